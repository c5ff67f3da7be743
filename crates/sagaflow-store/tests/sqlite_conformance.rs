//! The conformance suite on the embedded SQLite backend, one test per case.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use sagaflow_core::SagaStatus;
use sagaflow_store::conformance;
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};
use sagaflow_store::{Error, NewSaga, SagaRecord, StartOutcome, Store};
use tempfile::TempDir;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir, SqliteConfig::default()).expect("open the journal"))
}

/// A fresh store in its own directory; keep the directory alive as long as the store.
fn fresh() -> (TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    (dir, store)
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_dir, store) = fresh();
                conformance::$case(store).await;
            }
        )*
    };
}

// Every case of the suite, from its one list (a new case cannot be forgotten here).
sagaflow_store::for_each_conformance_case!(cases);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_writes_survive_reopen() {
    let (dir, store) = fresh();
    let path = dir.path().to_owned();
    conformance::resolved_writes_survive_reopen(store, move || async move { open(&path) }).await;
}

/// `run_all` itself works (what a new backend calls first), each case on its own directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_sqlite() {
    let dirs = Arc::new(std::sync::Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let dirs = Arc::clone(&dirs);
        async move {
            let (dir, store) = fresh();
            dirs.lock().expect("the directory list").push(dir);
            store
        }
    })
    .await;
}

/// SQLite only: a write the journal cannot begin (another process holds the write lock past the
/// busy timeout) fails with that error, not `Error::Closed` (which tells the engine to stop
/// retrying), and the store takes writes again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_cannot_begin_is_not_reported_closed() {
    let (dir, store) = fresh();
    let path = dir.path().join("journal.sqlite3");
    let intruder = rusqlite::Connection::open(&path).expect("a second connection");
    intruder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let saga = |id: &str| NewSaga {
        record: SagaRecord {
            id: id.to_owned(),
            definition: "place-order".to_owned(),
            version: 1,
            status: SagaStatus::Running,
            created_at_ms: 1,
            updated_at_ms: 1,
            idempotency_key: None,
            request_hash: None,
            shard: 0,
        },
        events: Vec::new(),
        fence: None,
        handoff: false,
    };
    let blocked = store.start_saga(saga("saga-1")).await;
    assert!(
        matches!(&blocked, Err(e) if !matches!(e, Error::Closed)),
        "{blocked:?}"
    );
    intruder
        .execute_batch("ROLLBACK")
        .expect("release the lock");
    let outcome = store.start_saga(saga("saga-1")).await.expect("start");
    assert_eq!(outcome, StartOutcome::Created);
}
