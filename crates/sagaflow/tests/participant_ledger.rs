//! The participant helpers against real databases: a SQLite file and the PostgreSQL server on
//! 127.0.0.1:5432. Every anomaly of at-least-once delivery, on both, with the same scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sagaflow::participant::{Delivery, Kind, Outcome, PgLedger, SqliteLedger};
use serde_json::json;

/// One participant database, either backend. The handler counts its effects in a table of the
/// participant's own, in the ledger's transaction, and refuses when the input says so.
enum Backend {
    /// The ledger, and the directory its file lives in (kept until the test ends).
    Sqlite(Arc<SqliteLedger>, #[allow(dead_code)] tempfile::TempDir),
    /// The ledger and the schema it lives in (dropped when the test is done with it).
    Postgres(PgLedger, String),
}

impl Backend {
    /// Drops a PostgreSQL backend's schema.
    async fn cleanup(&self) {
        if let Backend::Postgres(ledger, schema) = self {
            drop_schema(ledger, schema).await;
        }
    }

    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("p.db")).unwrap();
        ledger
            .with_connection(|c| {
                c.execute_batch("CREATE TABLE effects (step TEXT, kind TEXT, n INTEGER, PRIMARY KEY (step, kind))")?;
                Ok(())
            })
            .await
            .unwrap();
        Backend::Sqlite(Arc::new(ledger), dir)
    }

    async fn postgres() -> Option<Backend> {
        let url = postgres_url()?;
        let schema = format!("t_{:016x}", rand_u64());
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let ledger = PgLedger::connect(&format!("{url} options='-c search_path={schema}'"), 8)
            .await
            .unwrap();
        ledger
            .pool()
            .get()
            .await
            .unwrap()
            .batch_execute(
                "CREATE TABLE effects (step TEXT, kind TEXT, n INTEGER, PRIMARY KEY (step, kind))",
            )
            .await
            .unwrap();
        Some(Backend::Postgres(ledger, schema))
    }

    async fn deliver(&self, d: Delivery) -> (u16, serde_json::Value, bool) {
        let answer = match self {
            Backend::Sqlite(ledger, _) => ledger
                .handle(d, |tx, d| {
                    if d.kind == Kind::Action && d.input["refuse"] == d.step.as_str() {
                        return Ok::<_, rusqlite::Error>(Outcome::refused(422, "no", "refused"));
                    }
                    tx.execute(
                        "INSERT INTO effects (step, kind, n) VALUES (?1, ?2, 1) \
                         ON CONFLICT (step, kind) DO UPDATE SET n = n + 1",
                        [&d.step, d.kind.as_str()],
                    )?;
                    Ok(Outcome::done(json!({"done": d.step})))
                })
                .await
                .unwrap(),
            Backend::Postgres(ledger, _) => ledger
                .handle(&d, |tx, d| {
                    Box::pin(async move {
                        if d.kind == Kind::Action && d.input["refuse"] == d.step.as_str() {
                            return Ok::<_, tokio_postgres::Error>(Outcome::refused(
                                422, "no", "refused",
                            ));
                        }
                        tx.execute(
                            "INSERT INTO effects (step, kind, n) VALUES ($1, $2, 1) \
                             ON CONFLICT (step, kind) DO UPDATE SET n = effects.n + 1",
                            &[&d.step, &d.kind.as_str()],
                        )
                        .await?;
                        Ok(Outcome::done(json!({"done": d.step})))
                    })
                })
                .await
                .unwrap(),
        };
        (answer.status, answer.body, answer.replayed)
    }

    /// How many times the business change ran for (step, kind).
    async fn effects(&self, step: &str, kind: Kind) -> i64 {
        match self {
            Backend::Sqlite(ledger, _) => {
                let (step, kind) = (step.to_owned(), kind.as_str());
                ledger
                    .with_connection(move |c| {
                        Ok(c.query_row(
                            "SELECT COALESCE(SUM(n), 0) FROM effects WHERE step = ?1 AND kind = ?2",
                            [&step, kind],
                            |r| r.get(0),
                        )?)
                    })
                    .await
                    .unwrap()
            }
            Backend::Postgres(ledger, _) => ledger
                .pool()
                .get()
                .await
                .unwrap()
                .query_one(
                    "SELECT COALESCE(SUM(n), 0)::BIGINT FROM effects WHERE step = $1 AND kind = $2",
                    &[&step, &kind.as_str()],
                )
                .await
                .unwrap()
                .get(0),
        }
    }

    async fn duplicates(&self) -> u64 {
        match self {
            Backend::Sqlite(ledger, _) => ledger.duplicates().await.unwrap(),
            Backend::Postgres(ledger, _) => ledger.duplicates().await.unwrap(),
        }
    }
}

async fn drop_schema(ledger: &PgLedger, schema: &str) {
    let client = ledger.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// PostgreSQL's URL when it is reachable; `None` (said loudly) when it is not, unless CI
/// requires it (`SAGAFLOW_REQUIRE_POSTGRES=1`), where its absence fails the test.
fn postgres_url() -> Option<String> {
    let url = std::env::var("SAGAFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
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

fn delivery(
    saga: &str,
    step: &str,
    kind: Kind,
    attempt: u32,
    input: serde_json::Value,
) -> Delivery {
    Delivery {
        idempotency_key: format!("{saga}/{step}/{}", kind.as_str()),
        saga_id: saga.to_owned(),
        step: step.to_owned(),
        kind,
        attempt,
        input,
        results: json!({}),
        traceparent: None,
    }
}

async fn backends() -> Vec<(&'static str, Backend)> {
    let mut all = vec![("sqlite", Backend::sqlite().await)];
    if let Some(pg) = Backend::postgres().await {
        all.push(("postgres", pg));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_gets_the_recorded_answer_and_changes_nothing() {
    for (name, b) in backends().await {
        let first = b
            .deliver(delivery("s1", "reserve", Kind::Action, 1, json!({})))
            .await;
        assert_eq!((first.0, first.2), (200, false), "{name}");
        let again = b
            .deliver(delivery("s1", "reserve", Kind::Action, 1, json!({})))
            .await;
        assert_eq!(again, (200, first.1.clone(), true), "{name}");
        let retried = b
            .deliver(delivery("s1", "reserve", Kind::Action, 2, json!({})))
            .await;
        assert_eq!(retried.1, first.1, "{name}");
        assert_eq!(
            b.effects("reserve", Kind::Action).await,
            1,
            "{name}: applied once"
        );
        assert_eq!(b.duplicates().await, 2, "{name}");
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_for_an_action_never_seen_is_recorded_answered_2xx_and_changes_nothing() {
    for (name, b) in backends().await {
        let (status, body, replayed) = b
            .deliver(delivery("s2", "charge", Kind::Compensation, 1, json!({})))
            .await;
        assert_eq!((status, replayed), (200, false), "{name}");
        assert_eq!(body["compensated"], false, "{name}");
        assert_eq!(b.effects("charge", Kind::Compensation).await, 0, "{name}");
        // Its repeat is a duplicate.
        let (status, _, replayed) = b
            .deliver(delivery("s2", "charge", Kind::Compensation, 2, json!({})))
            .await;
        assert_eq!((status, replayed), (200, true), "{name}");
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_after_its_own_compensation_is_refused_and_changes_nothing() {
    for (name, b) in backends().await {
        b.deliver(delivery("s3", "ship", Kind::Compensation, 1, json!({})))
            .await;
        let (status, body, _) = b
            .deliver(delivery("s3", "ship", Kind::Action, 1, json!({})))
            .await;
        assert_eq!(status, 409, "{name}: {body}");
        assert!(
            (400..500).contains(&status) && ![408, 425, 429].contains(&status),
            "a business no"
        );
        assert_eq!(b.effects("ship", Kind::Action).await, 0, "{name}");
        let (status, _, replayed) = b
            .deliver(delivery("s3", "ship", Kind::Action, 2, json!({})))
            .await;
        assert_eq!(
            (status, replayed),
            (409, true),
            "{name}: the refusal is what later deliveries get"
        );
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_action_is_compensated_once_and_a_refused_one_not_at_all() {
    for (name, b) in backends().await {
        b.deliver(delivery("s4", "reserve", Kind::Action, 1, json!({})))
            .await;
        for attempt in 1..=3 {
            let (status, _, _) = b
                .deliver(delivery(
                    "s4",
                    "reserve",
                    Kind::Compensation,
                    attempt,
                    json!({}),
                ))
                .await;
            assert_eq!(status, 200, "{name}");
        }
        assert_eq!(b.effects("reserve", Kind::Compensation).await, 1, "{name}");

        let refuse = json!({"refuse": "pay"});
        let (status, body, _) = b
            .deliver(delivery("s5", "pay", Kind::Action, 1, refuse.clone()))
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["status"], 422);
        let (status, body, _) = b
            .deliver(delivery("s5", "pay", Kind::Compensation, 1, refuse))
            .await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(body["compensated"], false, "{name}");
        assert_eq!(b.effects("pay", Kind::Compensation).await, 0, "{name}");
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_step_apply_it_once() {
    for (name, b) in backends().await {
        let b = Arc::new(b);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let b = Arc::clone(&b);
            tasks.push(tokio::spawn(async move {
                let kind = if i % 4 == 3 {
                    Kind::Compensation
                } else {
                    Kind::Action
                };
                b.deliver(delivery("s6", "race", kind, 1, json!({}))).await
            }));
        }
        for task in tasks {
            let (status, _, _) = task.await.unwrap();
            assert!(status == 200 || status == 409, "{name}: {status}");
        }
        let actions = b.effects("race", Kind::Action).await;
        let compensations = b.effects("race", Kind::Compensation).await;
        assert!(
            actions <= 1 && compensations <= 1,
            "{name}: {actions} {compensations}"
        );
        // A compensation either undid the one action, or came first and blocked it.
        assert!(
            compensations <= actions,
            "{name}: {actions} {compensations}"
        );
        b.cleanup().await;
    }
}

/// A hot row: many sagas' handlers read and write one counter under SERIALIZABLE. Their own
/// statements conflict (40001); the ledger re-runs those deliveries, so every one is applied
/// exactly once and none is answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_conflicts_on_a_hot_row_are_rerun_not_failed() {
    let Some(Backend::Postgres(ledger, schema)) = Backend::postgres().await else {
        return;
    };
    ledger
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE hot (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO hot VALUES (1, 0);",
        )
        .await
        .unwrap();
    let ledger = Arc::new(ledger);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let ledger = Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            let d = delivery(&format!("hot-{i}"), "bump", Kind::Action, 1, json!({}));
            ledger
                .handle(&d, |tx, _| {
                    Box::pin(async move {
                        let n: i32 = tx
                            .query_one("SELECT n FROM hot WHERE id = 1", &[])
                            .await?
                            .get(0);
                        tokio::task::yield_now().await;
                        tx.execute("UPDATE hot SET n = $1 WHERE id = 1", &[&(n + 1)])
                            .await?;
                        Ok::<_, tokio_postgres::Error>(Outcome::done(json!({"n": n + 1})))
                    })
                })
                .await
        }));
    }
    for task in tasks {
        let answer = task
            .await
            .unwrap()
            .expect("no delivery fails on a conflict");
        assert_eq!(answer.status, 200);
    }
    let n: i32 = ledger
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT n FROM hot WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 24);
    drop_schema(&ledger, &schema).await;
}
