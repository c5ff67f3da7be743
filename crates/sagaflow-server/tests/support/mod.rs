//! Test support: a coordinator on a real SQLite journal called without sockets, and a real
//! participant over HTTP whose behaviour each URL scripts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use sagaflow_server::metrics::Metrics;
use sagaflow_server::{Engine, Limits, app};
use sagaflow_store::Store;
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};

pub struct Coordinator {
    pub engine: Engine,
    pub router: Router,
    pub dir: tempfile::TempDir,
}

impl Coordinator {
    pub async fn start() -> Coordinator {
        Coordinator::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> Coordinator {
        let dir = tempfile::tempdir().unwrap();
        Coordinator::open(dir, limits).await
    }

    /// A coordinator on a journal opened elsewhere (another backend); `dir` is then unused.
    pub async fn on_store(store: Arc<dyn Store>) -> Coordinator {
        let engine = Engine::new(store, Limits::default(), Arc::new(Metrics::new()));
        engine.recover().await.unwrap();
        let router = app(engine.clone());
        Coordinator {
            engine,
            router,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn open(dir: tempfile::TempDir, limits: Limits) -> Coordinator {
        let store = SqliteStore::open(dir.path(), SqliteConfig::default()).unwrap();
        let engine = Engine::new(Arc::new(store), limits, Arc::new(Metrics::new()));
        engine.recover().await.unwrap();
        let router = app(engine.clone());
        Coordinator {
            engine,
            router,
            dir,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.call_with(method, uri, body.map(|b| b.to_string()), &[])
            .await
    }

    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        request = request.header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    pub async fn define(&self, definition: Value) {
        let (status, _, body) = self.call("POST", "/v1/definitions", Some(definition)).await;
        assert!(status.is_success(), "defining: {status} {body}");
    }

    pub async fn start_saga(&self, definition: &str, input: Value) -> String {
        let (status, _, body) = self
            .call(
                "POST",
                "/v1/sagas",
                Some(json!({"definition": definition, "input": input})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn saga(&self, id: &str) -> Value {
        let (status, _, body) = self.call("GET", &format!("/v1/sagas/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls until the saga has `status` (a deadline, not a sleep, decides).
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let saga = self.saga(id).await;
            if saga["status"] == status {
                return saga;
            }
            assert!(
                Instant::now() < deadline,
                "saga never became {status}: {saga:#}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One request a participant received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    pub key: String,
    pub attempt: u32,
    pub saga_id: String,
    pub step: String,
    pub traceparent: String,
    pub body: Value,
}

/// A participant on a real socket. Paths script it:
/// `/ok/NAME`, `/refuse/NAME` (422), `/fail/NAME/STATUS` (always STATUS),
/// `/flaky/NAME/N` (503 for the first N deliveries of a key), `/throttle/NAME/SECS`
/// (429 with Retry-After: SECS the first time), `/slow/NAME/MS` (answers after MS).
#[derive(Clone)]
pub struct Participant {
    pub base: String,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Participant {
    pub async fn start() -> Participant {
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let participant = Participant {
            base: String::new(),
            deliveries,
            counts,
        };
        let router = Router::new()
            .route("/{*path}", any(handle))
            .with_state(participant.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Participant {
            base: format!("http://{addr}"),
            ..participant
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// `(step, kind)` of every delivery for a saga, in order.
    pub fn calls_of(&self, saga_id: &str) -> Vec<(String, String)> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.saga_id == saga_id)
            .map(|d| (d.step, d.key.rsplit('/').next().unwrap().to_owned()))
            .collect()
    }
}

async fn handle(
    State(p): State<Participant>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = header("idempotency-key");
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    p.deliveries.lock().unwrap().push(Delivery {
        path: path.clone(),
        key: key.clone(),
        attempt: header("sagaflow-attempt").parse().unwrap_or(0),
        saga_id: header("sagaflow-saga-id"),
        step: header("sagaflow-step"),
        traceparent: header("traceparent"),
        body: body.clone(),
    });
    let seen = {
        let mut counts = p.counts.lock().unwrap();
        let n = counts.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let parts: Vec<&str> = path.split('/').collect();
    let ok = || {
        (
            StatusCode::OK,
            axum::Json(json!({"path": path, "attempt": body["attempt"]})),
        )
            .into_response()
    };
    match parts.as_slice() {
        ["ok", ..] => ok(),
        ["refuse", ..] => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [("content-type", "application/problem+json")],
            r#"{"type":"about:blank","title":"Refused","status":422,"detail":"out of stock"}"#,
        )
            .into_response(),
        ["fail", _, status] => StatusCode::from_u16(status.parse().unwrap())
            .unwrap()
            .into_response(),
        ["flaky", _, n] if seen <= n.parse::<u32>().unwrap() => {
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
        ["flaky", ..] => ok(),
        ["redirect", to @ ..] => (
            StatusCode::FOUND,
            [("location", format!("/{}", to.join("/")))],
        )
            .into_response(),
        ["throttle", _, secs] if seen == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", *secs)],
            "slow down",
        )
            .into_response(),
        ["throttle", ..] => ok(),
        ["slow", _, ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            ok()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A step whose action and compensation are URLs of `p`, with quick retries.
pub fn step(p: &Participant, name: &str, action: &str) -> Value {
    json!({
        "name": name,
        "action": {"url": p.url(action), "timeout_ms": 2000},
        "compensation": {"url": p.url(&format!("/ok/{name}-undo"))},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 5, "max_backoff_ms": 20},
        "compensation_retry": {"max_attempts": 3, "initial_backoff_ms": 5, "max_backoff_ms": 20}
    })
}
