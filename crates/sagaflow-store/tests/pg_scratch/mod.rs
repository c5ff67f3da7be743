//! A schema of its own per test on the test PostgreSQL server, shared by the store's
//! PostgreSQL tests. The server is `postgres://postgres@127.0.0.1:5432/test` (trust auth), or
//! `SAGAFLOW_TEST_POSTGRES_URL`. When it does not answer, `Scratch::create` prints
//! `SKIPPED: PostgreSQL not reachable` and gives `None`, unless `SAGAFLOW_REQUIRE_POSTGRES` is
//! set (CI sets it): then it panics.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_store::Store;
use sagaflow_store::postgres::{PgConfig, PgStore};
use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn base_url() -> String {
    std::env::var("SAGAFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema of its own for one test, on a server that answered.
pub struct Scratch {
    pub admin: tokio_postgres::Client,
    pub schema: String,
    /// The store's URL: the base URL with this schema first on the search path.
    pub url: String,
}

impl Scratch {
    /// A fresh schema, or `None` (after saying so, loudly) when PostgreSQL is not there.
    pub async fn create() -> Option<Scratch> {
        let base = base_url();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_postgres::connect(&base, NoTls),
        )
        .await;
        let (admin, connection) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                let why = match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                };
                return skip(&base, &why);
            }
            Err(_) => return skip(&base, "no answer within 5 s"),
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let schema = format!("t_{:016x}", RandomState::new().hash_one(std::process::id()));
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test's schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!(
            "{base}{separator}options=-c%20search_path%3D{schema}&application_name=sagaflow_{schema}"
        );
        Some(Scratch { admin, schema, url })
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.open_pg().await)
    }

    pub async fn open_pg(&self) -> PgStore {
        PgStore::open(&self.url, PgConfig::default())
            .await
            .expect("open the journal on PostgreSQL")
    }

    /// Runs a test body, drops the schema whether it passed or not, then passes its panic on.
    pub async fn run(self, body: impl Future<Output = ()> + Send + 'static) {
        let outcome = tokio::spawn(body).await;
        let dropped = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
        match outcome {
            Ok(()) => dropped.expect("drop the test's schema"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the test's task failed: {e}"),
        }
    }
}

fn skip(url: &str, why: &str) -> Option<Scratch> {
    if std::env::var_os("SAGAFLOW_REQUIRE_POSTGRES").is_some() {
        panic!(
            "PostgreSQL is required (SAGAFLOW_REQUIRE_POSTGRES is set) but {url} is not reachable: {why}"
        );
    }
    // Straight to the process's stderr, past the test harness's capture, so it is seen.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: PostgreSQL not reachable at {url} ({why}); set SAGAFLOW_REQUIRE_POSTGRES to fail instead"
    );
    None
}
