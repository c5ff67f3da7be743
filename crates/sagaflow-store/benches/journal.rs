//! Micro-benchmarks of the journal's write path: encoding, and appends through group commit
//! into a real SQLite file with fsync. Run with `cargo bench -p sagaflow-store`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sagaflow_core::{Event, EventKind, Payload, Phase, SagaStatus};
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};
use sagaflow_store::{AppendBatch, NewSaga, SagaRecord, Store};

fn main() {
    divan::main();
}

fn started(id: &str) -> NewSaga {
    NewSaga {
        record: SagaRecord {
            id: id.into(),
            definition: "bench".into(),
            version: 1,
            status: SagaStatus::Running,
            created_at_ms: 1,
            updated_at_ms: 1,
            idempotency_key: None,
            request_hash: None,
            shard: 0,
        },
        events: vec![Event {
            at_ms: 1,
            kind: EventKind::SagaStarted {
                definition: "bench".into(),
                version: 1,
                input: Payload::from_json(r#"{"order": 42}"#).unwrap(),
                deadline_at_ms: None,
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            },
        }],
        fence: None,
        handoff: false,
    }
}

fn step_events() -> Vec<Event> {
    vec![
        Event {
            at_ms: 2,
            kind: EventKind::AttemptSucceeded {
                step: 0,
                phase: Phase::Action,
                attempt: 1,
                output: Payload::from_json(r#"{"ok": true}"#).unwrap(),
            },
        },
        Event {
            at_ms: 2,
            kind: EventKind::AttemptStarted {
                step: 1,
                phase: Phase::Action,
                attempt: 1,
            },
        },
    ]
}

/// A step transition encoded as the SQLite journal stores it: one JSON array per write.
#[divan::bench]
fn encode_a_step_transition(bencher: divan::Bencher) {
    let events = step_events();
    bencher.bench(|| serde_json::to_string(&events).unwrap().len());
}

/// `concurrency` sagas append one step transition each; the writer groups them into few
/// durable commits. The figure is per round of `concurrency` appends.
#[divan::bench(args = [1, 16, 64], sample_count = 20, sample_size = 5)]
fn group_committed_appends(bencher: divan::Bencher, concurrency: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteConfig::default()).unwrap());
    let ids: Vec<String> = (0..concurrency).map(|i| format!("saga-{i}")).collect();
    runtime.block_on(async {
        for id in &ids {
            store.start_saga(started(id)).await.unwrap();
        }
    });
    bencher.bench(|| {
        runtime.block_on(async {
            let mut tasks = Vec::with_capacity(concurrency);
            for id in &ids {
                let store = Arc::clone(&store);
                let id = id.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .append(AppendBatch {
                            saga_id: id,
                            events: step_events(),
                            status: SagaStatus::Running,
                            updated_at_ms: 2,
                            fence: None,
                        })
                        .await
                        .unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        })
    });
}
