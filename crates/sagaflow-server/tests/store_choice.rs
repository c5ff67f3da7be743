//! Which journal the coordinator opens: the embedded one by default, PostgreSQL for a
//! `postgres://` URL, and a clear error for anything else.
//!
//! The PostgreSQL test runs in a schema of its own on `postgres://postgres@127.0.0.1:5432/test`
//! (or `SAGAFLOW_TEST_POSTGRES_URL`); when nothing answers there it prints
//! `SKIPPED: PostgreSQL not reachable` and passes, unless `SAGAFLOW_REQUIRE_POSTGRES` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::time::Duration;

use sagaflow_server::{Config, Error, open_store};
use serde_json::json;
use support::{Coordinator, Participant, step};

#[tokio::test]
async fn an_unknown_store_scheme_is_a_clear_error() {
    let config = Config {
        store: Some("mysql://app:hunter2@db/sagaflow".to_owned()),
        ..Config::default()
    };
    let Err(error) = open_store(&config).await else {
        panic!("opened a mysql:// store");
    };
    assert!(matches!(error, Error::UnknownStore(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("postgres://"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaks: {message}"
    );
}

#[tokio::test]
async fn no_store_url_opens_the_embedded_journal_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let store = open_store(&config).await.expect("the embedded journal");
    store.ping().await.unwrap();
    store.close().await.unwrap();
    assert!(dir.path().join("data/journal.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_runs_to_completion_on_postgres() {
    let base = std::env::var("SAGAFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&base, tokio_postgres::NoTls),
    )
    .await;
    let (admin, connection) = match connected {
        Ok(Ok(pair)) => pair,
        failed => {
            let why = match failed {
                Ok(Err(e)) => match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
                _ => "no answer within 5 s".to_owned(),
            };
            if std::env::var_os("SAGAFLOW_REQUIRE_POSTGRES").is_some() {
                panic!(
                    "PostgreSQL is required (SAGAFLOW_REQUIRE_POSTGRES) but {base} is not reachable: {why}"
                );
            }
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: PostgreSQL not reachable at {base} ({why})"
            );
            return;
        }
    };
    tokio::spawn(connection);
    let schema = format!("t_{:016x}", RandomState::new().hash_one(std::process::id()));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let config = Config {
        store: Some(format!(
            "{base}{separator}options=-c%20search_path%3D{schema}"
        )),
        ..Config::default()
    };
    let ran = tokio::spawn(async move {
        let store = open_store(&config).await.expect("the PostgreSQL journal");
        let p = Participant::start().await;
        let c = Coordinator::on_store(store).await;
        c.define(json!({"name": "order", "steps": [
            step(&p, "reserve", "/ok/reserve"),
            step(&p, "charge", "/ok/charge"),
        ]}))
        .await;
        let id = c.start_saga("order", json!({"order": 42})).await;
        let saga = c.wait_status(&id, "completed").await;
        assert_eq!(saga["steps"][1]["status"], "succeeded");
        c.engine.shutdown(Duration::from_secs(5)).await;
    })
    .await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}
