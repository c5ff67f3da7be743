//! The conformance suite on the embedded SQLite backend, one test per case.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use sagaflow_store::conformance;
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};
use sagaflow_store::{Error, StartOutcome, Store};
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
    let blocked = store
        .start_saga(conformance::new_saga("saga-1", "place-order", 1))
        .await;
    assert!(
        matches!(&blocked, Err(e) if !matches!(e, Error::Closed)),
        "{blocked:?}"
    );
    intruder
        .execute_batch("ROLLBACK")
        .expect("release the lock");
    let outcome = store
        .start_saga(conformance::new_saga("saga-1", "place-order", 1))
        .await
        .expect("start");
    assert_eq!(outcome, StartOutcome::Created);
}

/// SQLite only: writes that come in a burst share commits, even though a write that comes
/// alone is committed by its caller. Here one task drives them all (as the benchmark's journal
/// fill does, through `buffer_unordered`): had each write that found none in flight been
/// committed on the spot, each would have found the one before it answered already, and every
/// write would have been a commit of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_shares_commits() {
    use futures::StreamExt;
    const SAGAS: usize = 2_000;
    const IN_FLIGHT: usize = 512;
    let (_dir, store) = fresh();
    let start = |n: usize| {
        let store = Arc::clone(&store);
        async move {
            store
                .start_saga(conformance::new_saga(
                    &format!("saga-{n}"),
                    "place-order",
                    1,
                ))
                .await
                .expect("start")
        }
    };
    let started: Vec<StartOutcome> = futures::stream::iter(0..SAGAS)
        .map(start)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(started.iter().all(|s| *s == StartOutcome::Created));
    let stats = store.stats();
    assert_eq!(stats.requests, SAGAS as u64);
    assert!(
        stats.commits * 10 <= SAGAS as u64,
        "{} commits for {SAGAS} writes",
        stats.commits
    );
}
