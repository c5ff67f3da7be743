//! The conformance suite on PostgreSQL, one test per case, plus what only a shared database
//! has: concurrent migrations, two stores on one database, a lost connection.
//!
//! Each test runs in a schema of its own (`t_<random>`, chosen through the URL's
//! `options=-c search_path=…`), dropped at the end whether the test passed or not. The server
//! is `postgres://postgres@127.0.0.1:5432/test` (trust auth), or `SAGAFLOW_TEST_POSTGRES_URL`.
//! When it does not answer, each test prints `SKIPPED: PostgreSQL not reachable` and passes,
//! unless `SAGAFLOW_REQUIRE_POSTGRES` is set (CI sets it): then it fails.

#![cfg(feature = "postgres")]
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

mod pg_scratch;

use pg_scratch::{Scratch, base_url};
use sagaflow_core::{Event, EventKind, Payload, SagaStatus};
use sagaflow_store::conformance;
use sagaflow_store::postgres::{PgConfig, PgStore, SCHEMA_VERSION};
use sagaflow_store::{AppendBatch, Error, NewSaga, SagaRecord, StartOutcome, Store};
use tokio::task::JoinSet;
use tokio_postgres::NoTls;

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(scratch) = Scratch::create().await else { return };
                let store = scratch.open().await;
                scratch.run(conformance::$case(store)).await;
            }
        )*
    };
}

// Every case of the suite, from its one list (a new case cannot be forgotten here).
sagaflow_store::for_each_conformance_case!(cases);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_writes_survive_reopen() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open().await;
    let url = scratch.url.clone();
    scratch
        .run(async move {
            conformance::resolved_writes_survive_reopen(store, move || async move {
                let store = PgStore::open(&url, PgConfig::default())
                    .await
                    .expect("reopen the journal");
                Arc::new(store) as Arc<dyn Store>
            })
            .await;
        })
        .await;
}

// ---- PostgreSQL only --------------------------------------------------------------------------

const T0: u64 = 1_700_000_000_000;

fn saga(id: &str, key: Option<&str>) -> NewSaga {
    NewSaga {
        record: SagaRecord {
            id: id.to_owned(),
            definition: "place-order".to_owned(),
            version: 1,
            status: SagaStatus::Running,
            created_at_ms: T0,
            updated_at_ms: T0,
            idempotency_key: key.map(str::to_owned),
            request_hash: key.map(|k| format!("hash-of-{k}")),
            shard: 0,
        },
        events: vec![Event {
            at_ms: T0,
            kind: EventKind::SagaStarted {
                definition: "place-order".to_owned(),
                version: 1,
                input: Payload::from_json(r#"{"order":42}"#).unwrap(),
                deadline_at_ms: None,
                trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            },
        }],
        fence: None,
        handoff: false,
    }
}

fn retry_event(at_ms: u64) -> AppendBatch {
    AppendBatch {
        saga_id: String::new(),
        events: vec![Event {
            at_ms,
            kind: EventKind::RetryRequested,
        }],
        status: SagaStatus::Running,
        updated_at_ms: at_ms,
        fence: None,
    }
}

/// A connection of its own to the test database, for a body that outlives the scratch's.
async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&base_url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Several processes migrating one empty database at once apply each version exactly once,
/// and migrating again is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let (url, schema) = (scratch.url.clone(), scratch.schema.clone());
    let admin = admin_client().await;
    scratch
        .run(async move {
            let mut migrations = JoinSet::new();
            for _ in 0..4 {
                let url = url.clone();
                migrations.spawn(async move { PgStore::migrate(&url).await });
            }
            for migrated in migrations.join_all().await {
                migrated.expect("a concurrent migration");
            }
            PgStore::migrate(&url).await.expect("migrating again");
            let versions: Vec<i64> = admin
                .query(
                    &format!("SELECT version FROM {schema}.sagaflow_schema ORDER BY version"),
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            assert_eq!(versions, (0..=SCHEMA_VERSION).collect::<Vec<_>>());
            let tables: i64 = admin
                .query_one(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = $1 AND table_name NOT LIKE 'sagaflow\\_%'",
                    &[&schema],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(tables, 0, "every table is named sagaflow_*");
        })
        .await;
}

/// The key columns schema version 4 moves to byte order (`COLLATE "C"`).
const BYTE_ORDERED_KEYS: [(&str, &str); 6] = [
    ("sagaflow_sagas", "id"),
    ("sagaflow_sagas", "definition"),
    ("sagaflow_sagas", "status"),
    ("sagaflow_sagas", "idempotency_key"),
    ("sagaflow_events", "saga_id"),
    ("sagaflow_definitions", "name"),
];

/// Each of `BYTE_ORDERED_KEYS`' collation in `schema`, `None` for the database's default.
async fn key_collations(admin: &tokio_postgres::Client, schema: &str) -> Vec<Option<String>> {
    let mut collations = Vec::new();
    for (table, column) in BYTE_ORDERED_KEYS {
        let row = admin
            .query_one(
                "SELECT collation_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
                &[&schema, &table, &column],
            )
            .await
            .unwrap();
        collations.push(row.get(0));
    }
    collations
}

/// A journal from before schema version 4, whose keys compare under the database's collation,
/// is migrated with its sagas in place: afterwards its keys compare bytes, and what it held
/// reads back as it was written (by id, by idempotency key, and as a repeated start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_move_to_byte_order_with_the_journal_in_place() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let (url, schema) = (scratch.url.clone(), scratch.schema.clone());
    let admin = admin_client().await;
    let store = scratch.open().await;
    scratch
        .run(async move {
            store.put_definition("place-order", "{}", T0).await.unwrap();
            store
                .start_saga(saga("saga-1", Some("key-1")))
                .await
                .unwrap();
            let mut batch = retry_event(T0 + 1);
            batch.saga_id = "saga-1".to_owned();
            store.append(batch).await.unwrap();
            let written = store.get_saga("saga-1").await.unwrap().unwrap();
            store.close().await.unwrap();
            assert_eq!(
                key_collations(&admin, &schema).await,
                vec![Some("C".to_owned()); BYTE_ORDERED_KEYS.len()],
                "a new journal's keys compare bytes"
            );
            // Back to version 3: the keys under the database's collation, versions 4 and 5 not
            // applied.
            undo_version_5(&admin, &schema).await;
            for (table, column) in BYTE_ORDERED_KEYS {
                admin
                    .batch_execute(&format!(
                        "ALTER TABLE {schema}.{table} ALTER COLUMN {column} TYPE TEXT \
                         COLLATE pg_catalog.\"default\""
                    ))
                    .await
                    .unwrap();
            }
            admin
                .batch_execute(&format!(
                    "DELETE FROM {schema}.sagaflow_schema WHERE version = 4"
                ))
                .await
                .unwrap();
            assert_eq!(
                key_collations(&admin, &schema).await,
                vec![None; BYTE_ORDERED_KEYS.len()]
            );

            PgStore::migrate(&url)
                .await
                .expect("migrating to version 4");
            assert_eq!(
                key_collations(&admin, &schema).await,
                vec![Some("C".to_owned()); BYTE_ORDERED_KEYS.len()]
            );
            let store = PgStore::open(&url, PgConfig::default()).await.unwrap();
            let read = store.get_saga("saga-1").await.unwrap().unwrap();
            assert_eq!(format!("{read:?}"), format!("{written:?}"));
            assert_key_held(&store, "key-1", "saga-1", "saga-2").await;
            let (definition, created) =
                store.put_definition("place-order", "{}", T0).await.unwrap();
            assert_eq!((definition.version, created), (1, false));
            store.close().await.unwrap();
        })
        .await;
}

/// `key` is `holder`'s: a lookup finds it, and a start of `repeat` with the key is answered
/// with it, writing nothing.
async fn assert_key_held(store: &PgStore, key: &str, holder: &str, repeat: &str) {
    let by_key = store.find_idempotency_key(key).await.unwrap().unwrap();
    assert_eq!(by_key.id, holder);
    let again = store.start_saga(saga(repeat, Some(key))).await.unwrap();
    assert!(
        matches!(&again, StartOutcome::Existing(r) if r.id == holder),
        "{again:?}"
    );
    assert!(store.get_saga(repeat).await.unwrap().is_none());
}

/// Undoes schema version 5: the idempotency key unique by a constraint again.
async fn undo_version_5(admin: &tokio_postgres::Client, schema: &str) {
    admin
        .batch_execute(&format!(
            "DROP INDEX {schema}.sagaflow_sagas_by_idempotency_key;
             ALTER TABLE {schema}.sagaflow_sagas ADD CONSTRAINT
                 sagaflow_sagas_idempotency_key_key UNIQUE (idempotency_key);
             DELETE FROM {schema}.sagaflow_schema WHERE version = 5;"
        ))
        .await
        .unwrap();
}

/// The unique indexes of `sagaflow_sagas` on the idempotency key: (name, definition).
async fn key_indexes(admin: &tokio_postgres::Client, schema: &str) -> Vec<(String, String)> {
    admin
        .query(
            "SELECT indexname::TEXT, indexdef FROM pg_indexes \
             WHERE schemaname = $1 AND tablename = 'sagaflow_sagas' \
             AND indexdef LIKE '%UNIQUE%(idempotency_key)%' ORDER BY indexname",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// A journal from before schema version 5, its idempotency keys unique by a constraint that
/// indexed every keyless saga's NULL, is migrated in place: afterwards one partial index holds
/// the keys alone, a repeated key still finds its saga, and keyless sagas still start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_move_to_an_index_of_the_keys_alone() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let (url, schema) = (scratch.url.clone(), scratch.schema.clone());
    let admin = admin_client().await;
    let store = scratch.open().await;
    scratch
        .run(async move {
            store.start_saga(saga("saga-1", Some("key-1"))).await.unwrap();
            store.start_saga(saga("saga-2", None)).await.unwrap();
            store.close().await.unwrap();
            let partial = vec![(
                "sagaflow_sagas_by_idempotency_key".to_owned(),
                format!(
                    "CREATE UNIQUE INDEX sagaflow_sagas_by_idempotency_key ON {schema}.sagaflow_sagas \
                     USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL)"
                ),
            )];
            assert_eq!(key_indexes(&admin, &schema).await, partial, "a new journal's");
            undo_version_5(&admin, &schema).await;
            let before = key_indexes(&admin, &schema).await;
            assert_eq!(before.len(), 1);
            assert_eq!(before[0].0, "sagaflow_sagas_idempotency_key_key");

            PgStore::migrate(&url)
                .await
                .expect("migrating to version 5");
            assert_eq!(key_indexes(&admin, &schema).await, partial, "a migrated journal's");
            let store = PgStore::open(&url, PgConfig::default()).await.unwrap();
            assert_key_held(&store, "key-1", "saga-1", "saga-3").await;
            let keyless = store.start_saga(saga("saga-4", None)).await.unwrap();
            assert_eq!(keyless, StartOutcome::Created);
            store.close().await.unwrap();
        })
        .await;
}

/// Two coordinators on one database: racing starts with one key create one saga, and racing
/// definition registrations get distinct, gapless versions (the loser of each race runs its
/// batch again and sees the winner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_keys_and_definition_versions() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [scratch.open().await, scratch.open().await];
    scratch
        .run(async move {
            let mut starts = JoinSet::new();
            for n in 0..40 {
                let store = Arc::clone(&stores[n % 2]);
                starts.spawn(async move {
                    let id = format!("saga-{n:02}");
                    store.start_saga(saga(&id, Some("the-key"))).await
                });
            }
            let outcomes = starts.join_all().await;
            let created = outcomes
                .iter()
                .filter(|o| matches!(o, Ok(StartOutcome::Created)))
                .count();
            assert_eq!(created, 1, "one saga holds the key: {outcomes:?}");
            let mut puts = JoinSet::new();
            for n in 0..100 {
                let store = Arc::clone(&stores[n % 2]);
                puts.spawn(async move {
                    let body = format!(r#"{{"body":{n}}}"#);
                    store.put_definition("place-order", &body, T0).await
                });
            }
            let mut versions: Vec<u32> = puts
                .join_all()
                .await
                .into_iter()
                .map(|put| put.expect("put_definition").0.version)
                .collect();
            versions.sort_unstable();
            assert_eq!(versions, (1..=100).collect::<Vec<_>>());
            for store in &stores {
                store.close().await.unwrap();
            }
        })
        .await;
}

/// Requests the database refuses (a taken saga id) in the middle of busy group commits fail
/// alone: every other request of their batches lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_statements_mid_batch_fail_alone() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open().await;
    scratch
        .run(async move {
            store.start_saga(saga("taken", None)).await.unwrap();
            let mut tasks = JoinSet::new();
            for n in 0..200 {
                let store = Arc::clone(&store);
                tasks.spawn(async move {
                    let id = if n % 10 == 3 {
                        "taken".to_owned()
                    } else {
                        format!("saga-{n:03}")
                    };
                    let started = store.start_saga(saga(&id, None)).await;
                    let mut batch = retry_event(T0 + 1);
                    batch.saga_id = "taken".to_owned();
                    let appended = store.append(batch).await;
                    (n, started.is_ok(), appended.is_ok())
                });
            }
            for (n, started, appended) in tasks.join_all().await {
                assert_eq!(started, n % 10 != 3, "start {n}");
                assert!(appended, "append {n}");
            }
            let taken = store.get_saga("taken").await.unwrap().unwrap();
            assert_eq!(taken.events.len(), 201, "the first event and 200 appends");
            assert_eq!(taken.record.definition, "place-order");
            let counts = store.count_by_status().await.unwrap();
            assert_eq!(counts, vec![("running".to_owned(), 181)]);
            let stats = store.stats();
            assert!(stats.commits < stats.requests, "group commit: {stats:?}");
        })
        .await;
}

/// When the database drops the store's connections, a write fails with an error that is not
/// `Closed` (the engine retries it) or lands, and the store reconnects by itself: writes and
/// reads work again, and nothing landed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_fail_writes_retryably_then_reconnect() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let store = scratch.open().await;
    let application = format!("sagaflow_{}", scratch.schema);
    let killer = tokio_postgres::connect(&base_url(), NoTls).await.unwrap();
    tokio::spawn(killer.1);
    let killer = killer.0;
    scratch
        .run(async move {
            store.start_saga(saga("saga-1", None)).await.unwrap();
            store.ping().await.unwrap();
            let mut landed = 0;
            for round in 0..3u64 {
                let killed: i64 = killer
                    .query_one(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = $1",
                        &[&application],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert!(killed >= 1, "the store's connections were found");
                // Retry as the engine does, within a deadline.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let mut batch = retry_event(T0 + 1 + round);
                    batch.saga_id = "saga-1".to_owned();
                    match store.append(batch).await {
                        Ok(()) => break,
                        Err(Error::Closed) => panic!("a lost connection reads as Closed"),
                        Err(e @ Error::CommitUnknown(_)) => panic!("{e}"),
                        Err(e) => {
                            assert!(tokio::time::Instant::now() < deadline, "no reconnect: {e}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                landed += 1;
                let mut read = store.get_saga("saga-1").await;
                while read.is_err() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    read = store.get_saga("saga-1").await;
                }
                let loaded = read.expect("reads reconnect").unwrap();
                assert_eq!(loaded.events.len(), 1 + landed, "every append landed once");
            }
        })
        .await;
}

/// A server that does not answer fails `open` with a clear, retryable error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_without_a_server_fails_unavailable() {
    let config = PgConfig {
        connect_timeout: Duration::from_secs(2),
        ..PgConfig::default()
    };
    let opened = PgStore::open("postgres://postgres:secret@127.0.0.1:1/test", config).await;
    match opened {
        Err(Error::Unavailable(message)) => {
            assert!(message.contains("127.0.0.1:1"), "{message}");
            assert!(!message.contains("secret"), "the password leaks: {message}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("opened a store on a closed port"),
    }
}

/// Where a [`CutProxy`] breaks the connection that sends the next `COMMIT`.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The server never receives the `COMMIT`: the transaction aborts.
    BeforeCommit,
    /// The server receives and runs the `COMMIT`; its answer is lost.
    AfterCommit,
}

/// A TCP relay to the database that breaks, once, the connection carrying a `COMMIT`.
struct CutProxy {
    port: u16,
    armed: Arc<std::sync::Mutex<Option<Cut>>>,
}

impl CutProxy {
    async fn start(target: std::net::SocketAddr) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::Mutex::new(None));
        let arm = Arc::clone(&armed);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&arm)));
            }
        });
        CutProxy { port, armed }
    }

    fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }
}

async fn relay(
    mut client: tokio::net::TcpStream,
    mut server: tokio::net::TcpStream,
    armed: Arc<std::sync::Mutex<Option<Cut>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &up[..n];
                // A simple-protocol query message carrying exactly "COMMIT".
                if chunk.windows(7).any(|w| w == b"COMMIT\0") {
                    let cut = armed.lock().unwrap().take();
                    match cut {
                        Some(Cut::BeforeCommit) => return,
                        Some(Cut::AfterCommit) => {
                            let _ = server.write_all(chunk).await;
                            // Let the server commit, then drop both sides unanswered.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            return;
                        }
                        None => {}
                    }
                }
                if server.write_all(chunk).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A connection that breaks around `COMMIT`: when the batch landed, the writer learns so from
/// its row and answers success (a retry would record it twice); when it did not, the answer is
/// a retryable `Unavailable`. Either way the journal has each append once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_resolved() {
    let Some(scratch) = Scratch::create().await else {
        return;
    };
    let base: tokio_postgres::Config = base_url().parse().unwrap();
    let target = match (&base.get_hosts()[0], base.get_ports().first()) {
        (tokio_postgres::config::Host::Tcp(host), port) => {
            let port = port.copied().unwrap_or(5432);
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .unwrap()
                .next()
                .unwrap()
        }
        (other, _) => panic!("the test server must be reached over TCP, not {other:?}"),
    };
    let proxy = CutProxy::start(target).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}?options=-c%20search_path%3D{}",
        base.get_user().unwrap_or("postgres"),
        proxy.port,
        base.get_dbname().unwrap_or("test"),
        scratch.schema
    );
    let store = PgStore::open(&url, PgConfig::default())
        .await
        .expect("open through the proxy");
    scratch
        .run(async move {
            store.start_saga(saga("saga-1", None)).await.unwrap();
            let append = |at_ms| {
                let mut batch = retry_event(at_ms);
                batch.saga_id = "saga-1".to_owned();
                store.append(batch)
            };
            proxy.arm(Cut::AfterCommit);
            append(T0 + 1)
                .await
                .expect("a landed batch is reported landed");
            assert!(proxy.armed.lock().unwrap().is_none(), "the cut happened");
            proxy.arm(Cut::BeforeCommit);
            let lost = append(T0 + 2).await;
            assert!(matches!(lost, Err(Error::Unavailable(_))), "{lost:?}");
            append(T0 + 3).await.expect("the writer reconnected");
            let loaded = store.get_saga("saga-1").await.unwrap().unwrap();
            let times: Vec<u64> = loaded.events.iter().map(|e| e.at_ms).collect();
            assert_eq!(times, [T0, T0 + 1, T0 + 3]);
            store.close().await.unwrap();
        })
        .await;
}
