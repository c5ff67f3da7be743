//! Services under test: a router on a fresh database (a SQLite file, or a fresh PostgreSQL
//! schema when the server on 127.0.0.1:5432 answers), called with `oneshot`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use sagaflow_shop::chaos::{Chaos, ChaosConfig};
use sagaflow_shop::{Db, Service, Snapshot, Target, app};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The PostgreSQL the tests use unless `SAGAFLOW_TEST_POSTGRES_URL` says otherwise.
const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// PostgreSQL's URL when it answers; `None`, said loudly, when it does not, unless CI
/// requires it (`SAGAFLOW_REQUIRE_POSTGRES`), where its absence fails the test.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("SAGAFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| POSTGRES_URL_DEFAULT.to_owned());
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        std::time::Duration::from_secs(1),
    )
    .is_ok();
    if reachable {
        return Some(url);
    }
    assert!(
        std::env::var("SAGAFLOW_REQUIRE_POSTGRES").is_err(),
        "PostgreSQL is required (SAGAFLOW_REQUIRE_POSTGRES) but 127.0.0.1:5432 does not answer"
    );
    eprintln!(
        "SKIPPED: PostgreSQL is not reachable on 127.0.0.1:5432; the PostgreSQL half of this test did not run"
    );
    None
}

fn unique() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// One service on one database.
pub struct Shop {
    pub backend: &'static str,
    pub service: Service,
    pub router: Router,
    pub target: Target,
    _dir: Option<tempfile::TempDir>,
}

impl Shop {
    /// `service` on every backend available: SQLite, and PostgreSQL when it answers.
    pub async fn every_backend(service: Service) -> Vec<Shop> {
        Shop::every_backend_with(service, ChaosConfig::default()).await
    }

    pub async fn every_backend_with(service: Service, chaos: ChaosConfig) -> Vec<Shop> {
        let mut shops = vec![Shop::sqlite(service, chaos).await];
        if let Some(url) = postgres_url() {
            shops.push(Shop::postgres(service, chaos, &url).await);
        }
        shops
    }

    pub async fn sqlite(service: Service, chaos: ChaosConfig) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Sqlite(dir.path().join(format!("{service}.db")));
        Shop::open("sqlite", service, chaos, target, Some(dir)).await
    }

    pub async fn postgres(service: Service, chaos: ChaosConfig, url: &str) -> Shop {
        let schema = format!("shop_test_{:016x}", unique());
        let target = Target::parse(url, Some(&schema)).unwrap();
        Shop::open("postgres", service, chaos, target, None).await
    }

    async fn open(
        backend: &'static str,
        service: Service,
        chaos: ChaosConfig,
        target: Target,
        dir: Option<tempfile::TempDir>,
    ) -> Shop {
        let db = Db::open(service, &target, 4).await.unwrap();
        let router = app(service, db, Arc::new(Chaos::new(chaos)));
        Shop {
            backend,
            service,
            router,
            target,
            _dir: dir,
        }
    }

    /// Delivers a step's action (`kind` "action") or compensation to `path`; the answer's
    /// status, body and whether it was replayed from the ledger.
    pub async fn deliver(
        &self,
        path: &str,
        saga: &str,
        step: &str,
        kind: &str,
        input: &Value,
    ) -> (u16, Value, bool) {
        let body =
            json!({"saga_id": saga, "step": step, "attempt": 1, "input": input, "results": {}});
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{saga}/{step}/{kind}"))
            .header("sagaflow-saga-id", saga)
            .header("sagaflow-step", step)
            .header("sagaflow-attempt", "1")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("sagaflow-replayed");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, replayed)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let request = http::Request::get(path).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The service's tables, read from its database directly.
    pub async fn snapshot(&self) -> Snapshot {
        sagaflow_shop::read_snapshot(self.service, &self.target)
            .await
            .unwrap()
    }

    pub async fn drop_schema(&self) {
        if let Target::Postgres {
            url,
            schema: Some(schema),
        } = &self.target
        {
            sagaflow_shop::drop_pg_schema(url, schema).await.unwrap();
        }
    }
}

/// An order as the saga's input.
pub fn order(id: &str, sku: &str, quantity: i64, account: &str, amount: i64, day: &str) -> Value {
    json!({
        "order_id": id,
        "sku": sku,
        "quantity": quantity,
        "account": account,
        "amount_cents": amount,
        "ship_day": day,
    })
}
