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

/// No commit checkpoints the WAL (a lone write's caller is an event loop); the checkpointer's
/// thread does, beside the commits, and holds them once the WAL is long, so that under writes
/// that never pause the WAL still starts over instead of growing without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_writes_that_never_pause() {
    use sagaflow_core::{Event, EventKind, Phase, SagaStatus};
    const WRITERS: usize = 8;
    const PAGES_MAX: i64 = 1024;
    const PAGE: u64 = 4096;
    // Each commit adds at least two pages to the WAL (a journal row and its saga's row live in
    // two b-trees; ~6 here): this many would make a WAL of 50 MB (~200 MB here), well past
    // what is asserted below, if it never started over.
    const COMMITS: u64 = 6 * PAGES_MAX as u64;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = SqliteConfig {
        wal_pages_max: PAGES_MAX,
        ..SqliteConfig::default()
    };
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), config).expect("open the journal"));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("saga-{w}");
                store
                    .start_saga(conformance::new_saga(&id, "place-order", 1))
                    .await
                    .expect("start");
                for n in 0.. {
                    if store.stats().commits >= COMMITS {
                        break;
                    }
                    let event = Event {
                        at_ms: n,
                        kind: EventKind::AttemptStarted {
                            step: 0,
                            phase: Phase::Action,
                            attempt: 1,
                        },
                    };
                    store
                        .append(sagaflow_store::AppendBatch {
                            saga_id: id.clone(),
                            events: vec![event],
                            status: SagaStatus::Running,
                            updated_at_ms: n,
                            fence: None,
                        })
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer");
    }
    let wal = std::fs::metadata(dir.path().join("journal.sqlite3-wal"))
        .expect("the WAL")
        .len();
    // The bound, and what commits add past it before the checkpointer's next pass (50 ms
    // later, and later still on a busy machine): ~800 pages here, ~2,300 with the workspace's
    // other tests beside it.
    assert!(
        wal <= 8 * PAGES_MAX as u64 * PAGE,
        "a WAL of {wal} bytes after {} commits",
        store.stats().commits
    );
    // Checkpoints moved the pages into the database file.
    let db = std::fs::metadata(dir.path().join("journal.sqlite3"))
        .expect("the database file")
        .len();
    assert!(db > 2 * PAGE, "a database file of {db} bytes");
}

/// An append that keeps the saga's status writes its journal row only: the saga's row keeps the
/// `updated_at` its last status change gave it, and every read takes the journal row's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_keeps_the_status_leaves_the_sagas_row_alone() {
    use sagaflow_core::SagaStatus;
    let (dir, store) = fresh();
    let started = conformance::new_saga("saga-1", "place-order", 1_000);
    assert_eq!(
        store.start_saga(started).await.expect("start"),
        StartOutcome::Created
    );
    let append = |status, at_ms| sagaflow_store::AppendBatch {
        saga_id: "saga-1".into(),
        events: vec![conformance::attempt_started(0, 1, at_ms)],
        status,
        updated_at_ms: at_ms,
        fence: None,
    };
    store
        .append(append(SagaStatus::Running, 1_010))
        .await
        .expect("append");
    let loaded = store.get_saga("saga-1").await.expect("get").expect("saga");
    assert_eq!(loaded.record.updated_at_ms, 1_010);

    let conn = rusqlite::Connection::open(dir.path().join(sagaflow_store::sqlite::JOURNAL_FILE))
        .expect("open the journal file");
    let row = |conn: &rusqlite::Connection| -> (String, i64) {
        conn.query_row(
            "SELECT status, updated_at_ms FROM sagas WHERE id = 'saga-1'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the saga's row")
    };
    assert_eq!(
        row(&conn),
        ("running".into(), 1_000),
        "the row was not rewritten"
    );

    // A status change rewrites it, and then its row's time is the saga's again.
    store
        .append(append(SagaStatus::Compensating, 1_020))
        .await
        .expect("append");
    assert_eq!(row(&conn), ("compensating".into(), 1_020));
    let loaded = store.get_saga("saga-1").await.expect("get").expect("saga");
    assert_eq!(loaded.record.updated_at_ms, 1_020);
    assert_eq!(loaded.events.len(), 3);
    store.close().await.expect("close");
}
