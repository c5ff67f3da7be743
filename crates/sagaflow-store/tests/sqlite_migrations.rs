//! A journal written by an older schema opens with every saga and event intact.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use sagaflow_core::{Event, EventKind, Payload, Phase, SagaStatus};
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};
use sagaflow_store::{AppendBatch, StartOutcome, Store};

/// The schema as versions 1 and 2 left it: one `events` row per event, keyed by the saga's id.
const SCHEMA_V2: &str = r#"
    CREATE TABLE definitions (
        name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL, PRIMARY KEY (name, version)
    );
    CREATE TABLE sagas (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE, request_hash TEXT
    );
    CREATE INDEX sagas_by_status ON sagas (status, seq);
    CREATE INDEX sagas_by_definition ON sagas (definition, seq);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY, saga_id TEXT NOT NULL, at_ms INTEGER NOT NULL, body TEXT NOT NULL
    );
    CREATE INDEX events_by_saga ON events (saga_id, seq);
    CREATE INDEX sagas_finished_by_time ON sagas (updated_at_ms)
        WHERE status IN ('completed', 'compensated');
    PRAGMA user_version = 2;
"#;

fn event(at_ms: u64, kind: EventKind) -> Event {
    Event { at_ms, kind }
}

fn journal_of(step_count: usize) -> Vec<Event> {
    let mut events = vec![event(
        1_000,
        EventKind::SagaStarted {
            definition: "order".into(),
            version: 1,
            input: Payload::from_json(r#"{"order":7}"#).unwrap(),
            deadline_at_ms: None,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        },
    )];
    for step in 0..step_count {
        let at_ms = 1_001 + step as u64;
        events.push(event(
            at_ms,
            EventKind::AttemptStarted {
                step,
                phase: Phase::Action,
                attempt: 1,
            },
        ));
        events.push(event(
            at_ms,
            EventKind::AttemptSucceeded {
                step,
                phase: Phase::Action,
                attempt: 1,
                output: Payload::from_json(&format!(r#"{{"step":{step}}}"#)).unwrap(),
            },
        ));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_journal_keeps_its_sagas_and_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(sagaflow_store::sqlite::JOURNAL_FILE);
    // Two sagas whose events interleave in the old table, as concurrent sagas' do.
    let (running, finished) = (journal_of(1), journal_of(2));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V2).unwrap();
        for (id, status) in [("saga-r", "running"), ("saga-f", "completed")] {
            conn.execute(
                "INSERT INTO sagas (id, definition, version, status, created_at_ms, updated_at_ms) \
                 VALUES (?1, 'order', 1, ?2, 1000, 1003)",
                rusqlite::params![id, status],
            )
            .unwrap();
        }
        let longest = running.len().max(finished.len());
        for i in 0..longest {
            for (id, events) in [("saga-r", &running), ("saga-f", &finished)] {
                if let Some(e) = events.get(i) {
                    conn.execute(
                        "INSERT INTO events (saga_id, at_ms, body) VALUES (?1, ?2, ?3)",
                        rusqlite::params![id, e.at_ms as i64, serde_json::to_string(e).unwrap()],
                    )
                    .unwrap();
                }
            }
        }
    }

    let store = SqliteStore::open(dir.path(), SqliteConfig::default()).unwrap();
    let loaded = store.get_saga("saga-f").await.unwrap().unwrap();
    assert_eq!(loaded.events, finished);
    assert_eq!(loaded.record.status, SagaStatus::Completed);
    let unfinished = store.load_unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].record.id, "saga-r");
    assert_eq!(unfinished[0].events, running);
    // Migrated journal rows carry no `at_ms`: the saga's row tells its `updated_at`.
    assert_eq!(unfinished[0].record.updated_at_ms, 1_003);

    // New writes land after the migrated ones, and each tells its `updated_at`, whether it
    // rewrote the saga's row (the first, which finds the saga uncached) or not.
    let more = journal_of(2)[3..].to_vec();
    for (events, updated_at_ms) in [(&more[..1], 1_010), (&more[1..], 1_020)] {
        store
            .append(AppendBatch {
                saga_id: "saga-r".into(),
                events: events.to_vec(),
                status: SagaStatus::Running,
                updated_at_ms,
                fence: None,
            })
            .await
            .unwrap();
        let loaded = store.get_saga("saga-r").await.unwrap().unwrap();
        assert_eq!(loaded.record.updated_at_ms, updated_at_ms);
    }
    let loaded = store.get_saga("saga-r").await.unwrap().unwrap();
    assert_eq!(loaded.events, [running, more].concat());
    // A purge takes a migrated saga's journal with it.
    assert_eq!(store.purge_finished(1_000_000, 10).await.unwrap(), 1);
    assert!(store.get_saga("saga-f").await.unwrap().is_none());
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_journal_keeps_idempotency_keys_unique_and_looks_them_up_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(sagaflow_store::sqlite::JOURNAL_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V2).unwrap();
        conn.execute(
            "INSERT INTO sagas (id, definition, version, status, created_at_ms, updated_at_ms, \
             idempotency_key, request_hash) \
             VALUES ('saga-k', 'order', 1, 'completed', 1000, 1003, 'key-1', 'hash-1')",
            [],
        )
        .unwrap();
    }

    let store = SqliteStore::open(dir.path(), SqliteConfig::default()).unwrap();
    let found = store.find_idempotency_key("key-1").await.unwrap().unwrap();
    assert_eq!(found.id, "saga-k");
    // The same key again finds the migrated saga instead of starting a second one.
    let mut again = sagaflow_store::conformance::new_saga("saga-k2", "order", 2_000);
    again.record.idempotency_key = Some("key-1".into());
    again.record.request_hash = Some("hash-1".into());
    match store.start_saga(again).await.unwrap() {
        StartOutcome::Existing(existing) => assert_eq!(existing.id, "saga-k"),
        StartOutcome::Created => panic!("a second saga took a key already taken"),
    }
    // Sagas without a key are many, and none of them takes a place in the key's index.
    for i in 0..3 {
        let saga = sagaflow_store::conformance::new_saga(&format!("saga-{i}"), "order", 2_000);
        assert_eq!(store.start_saga(saga).await.unwrap(), StartOutcome::Created);
    }
    store.close().await.unwrap();

    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM sagas WHERE idempotency_key = ?1",
            ["key-1"],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("sagas_by_idempotency_key"), "{plan}");
    let keyed: i64 = conn
        .query_row(
            "SELECT count(*) FROM sagas INDEXED BY sagas_by_idempotency_key \
             WHERE idempotency_key IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(keyed, 1);
    // `AUTOINCREMENT` is gone, and with it the counter row that every start rewrote.
    let counters: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_sequence", [], |row| row.get(0))
        .unwrap();
    assert_eq!(counters, 0);
}
