//! The ledger on PostgreSQL (and CockroachDB, which speaks the same SQL here): the business
//! change and the record of its answer in one SERIALIZABLE transaction, re-run on SQLSTATE
//! 40001 / 40P01. No advisory locks: a per-step lock row serializes an action and its
//! compensation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Client, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Transaction};

use super::plan::{Plan, Recorded, plan};
use super::{Answer, Delivery, Error, Kind, Outcome};

/// The ledger's tables, created by [`PgLedger::new`].
pub const LEDGER_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sagaflow_deliveries (
        saga_id TEXT    NOT NULL,
        step    TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        status  INTEGER NOT NULL,
        body    TEXT    NOT NULL,
        replays BIGINT  NOT NULL DEFAULT 0,
        PRIMARY KEY (saga_id, step, kind)
    );
    CREATE TABLE IF NOT EXISTS sagaflow_step_locks (
        saga_id TEXT   NOT NULL,
        step    TEXT   NOT NULL,
        touched BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (saga_id, step)
    );";

/// How many times a transaction aborted by a serialization failure or a deadlock is re-run.
const TRANSACTION_TRIES_MAX: u32 = 10;

/// Whether a database error is a transaction conflict worth re-running the transaction for:
/// `40001` (serialization failure: PostgreSQL SERIALIZABLE, CockroachDB's restarts) or
/// `40P01` (deadlock detected).
pub fn is_retryable_sqlstate(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Runs `attempt` until it succeeds, fails with an error that is not a transaction conflict,
/// or has been tried `TRANSACTION_TRIES_MAX` times; between tries it waits with exponential
/// backoff and full jitter (2 ms doubling, capped at 500 ms). `attempt` must run a whole
/// transaction (begin to commit) so that re-running it is safe.
///
/// ```no_run
/// # async fn example(pool: deadpool_postgres::Pool) -> Result<(), tokio_postgres::Error> {
/// use sagaflow::participant::retry_transaction;
/// let moved = retry_transaction(|| {
///     let pool = pool.clone();
///     async move {
///         let mut client = pool.get().await.expect("a connection");
///         let tx = client.build_transaction()
///             .isolation_level(tokio_postgres::IsolationLevel::Serializable)
///             .start().await?;
///         tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", &[]).await?;
///         tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", &[]).await?;
///         tx.commit().await?;
///         Ok::<_, tokio_postgres::Error>(true)
///     }
/// }, |e| sagaflow::participant::is_retryable_sqlstate(e)).await?;
/// # let _ = moved; Ok(()) }
/// ```
pub async fn retry_transaction<T, E, F, Fut>(
    mut attempt: F,
    is_conflict: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if tries < TRANSACTION_TRIES_MAX && is_conflict(&e) => {
                let cap_ms = (2u64 << tries.min(8)).min(500);
                let delay_ms = rand::random::<u64>() % (cap_ms + 1);
                tracing::debug!(tries, delay_ms, "transaction conflict; running it again");
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            other => return other,
        }
    }
}

/// A boxed future borrowing the transaction, as a handler returns it.
pub type HandlerFuture<'a, E> = Pin<Box<dyn Future<Output = Result<Outcome, E>> + Send + 'a>>;

/// A participant's PostgreSQL database with its delivery ledger.
#[derive(Clone)]
pub struct PgLedger {
    pool: Pool,
}

enum Failure {
    Db(tokio_postgres::Error),
    /// The handler's own statement hit a transaction conflict: re-run the delivery.
    HandlerConflict(String),
    Other(Error),
}

/// Whether a handler's error is, or was caused by, a transaction conflict (40001 / 40P01).
fn is_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(db) = e.downcast_ref::<tokio_postgres::Error>()
            && is_retryable_sqlstate(db)
        {
            return true;
        }
        current = e.source();
    }
    false
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Db(e)
    }
}

impl PgLedger {
    /// Uses a connection pool, creating the ledger tables.
    pub async fn new(pool: Pool) -> Result<PgLedger, Error> {
        let client = pool.get().await?;
        client.batch_execute(LEDGER_SCHEMA).await?;
        Ok(PgLedger { pool })
    }

    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of at most `size`
    /// connections, and creates the ledger tables.
    pub async fn connect(url: &str, size: usize) -> Result<PgLedger, Error> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::Database(e.to_string()))?;
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .build()
            .map_err(|e| Error::Database(e.to_string()))?;
        PgLedger::new(pool).await
    }

    /// The pool, for the service's own schema and reads.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Handles one delivery exactly once (see [`SqliteLedger::handle`](super::SqliteLedger)
    /// for the rules). `f` may run more than once: a SERIALIZABLE conflict — in the ledger's
    /// statements or in the handler's own, when its error is or wraps (through `source()`) a
    /// `tokio_postgres::Error` with SQLSTATE 40001 / 40P01 — re-runs the whole transaction, so
    /// it must do its work through the transaction it is given.
    pub async fn handle<F, E>(&self, delivery: &Delivery, f: F) -> Result<Answer, Error>
    where
        F: for<'a> Fn(&'a Transaction<'a>, &'a Delivery) -> HandlerFuture<'a, E>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let result = retry_transaction(
            || async {
                let mut client = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| Failure::Other(e.into()))?;
                run_once(&mut client, delivery, &f).await
            },
            |e| match e {
                Failure::Db(db) => is_retryable_sqlstate(db),
                Failure::HandlerConflict(_) => true,
                Failure::Other(_) => false,
            },
        )
        .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(Failure::Db(e)) => Err(e.into()),
            Err(Failure::HandlerConflict(message)) => Err(Error::Database(message)),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// How many duplicate deliveries the ledger answered from its records.
    pub async fn duplicates(&self) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(SUM(replays), 0)::BIGINT FROM sagaflow_deliveries",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

async fn run_once<F, E>(client: &mut Client, d: &Delivery, f: &F) -> Result<Answer, Failure>
where
    F: for<'a> Fn(&'a Transaction<'a>, &'a Delivery) -> HandlerFuture<'a, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await?;
    // Serializes the deliveries of one step (its action and its compensation).
    tx.execute(
        "INSERT INTO sagaflow_step_locks (saga_id, step) VALUES ($1, $2) \
         ON CONFLICT (saga_id, step) DO UPDATE SET touched = sagaflow_step_locks.touched + 1",
        &[&d.saga_id, &d.step],
    )
    .await?;
    let action = recorded(&tx, d, Kind::Action).await?;
    let compensation = recorded(&tx, d, Kind::Compensation).await?;
    let answer = match plan(d.kind, action.as_ref(), compensation.as_ref()) {
        Plan::Replay(recorded) => {
            tx.execute(
                "UPDATE sagaflow_deliveries SET replays = replays + 1 \
                 WHERE saga_id = $1 AND step = $2 AND kind = $3",
                &[&d.saga_id, &d.step, &d.kind.as_str()],
            )
            .await?;
            Answer {
                status: recorded.status,
                body: recorded.body,
                replayed: true,
            }
        }
        Plan::RecordOnly(recorded) => {
            record(&tx, d, &recorded).await?;
            Answer {
                status: recorded.status,
                body: recorded.body,
                replayed: false,
            }
        }
        Plan::Run => {
            let outcome = f(&tx, d).await.map_err(|e| {
                if is_conflict(&e) {
                    Failure::HandlerConflict(e.to_string())
                } else {
                    Failure::Other(Error::Handler(e.to_string()))
                }
            })?;
            let (status, body) = outcome.answer();
            record(
                &tx,
                d,
                &Recorded {
                    status,
                    body: body.clone(),
                },
            )
            .await?;
            Answer {
                status,
                body,
                replayed: false,
            }
        }
    };
    tx.commit().await?;
    Ok(answer)
}

async fn recorded(
    tx: &Transaction<'_>,
    d: &Delivery,
    kind: Kind,
) -> Result<Option<Recorded>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT status, body FROM sagaflow_deliveries \
             WHERE saga_id = $1 AND step = $2 AND kind = $3",
            &[&d.saga_id, &d.step, &kind.as_str()],
        )
        .await?;
    Ok(row.map(|row| Recorded {
        status: row.get::<_, i32>(0) as u16,
        body: serde_json::from_str(row.get::<_, &str>(1)).unwrap_or(serde_json::Value::Null),
    }))
}

async fn record(
    tx: &Transaction<'_>,
    d: &Delivery,
    recorded: &Recorded,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO sagaflow_deliveries (saga_id, step, kind, status, body) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &d.saga_id,
            &d.step,
            &d.kind.as_str(),
            &i32::from(recorded.status),
            &recorded.body.to_string(),
        ],
    )
    .await?;
    Ok(())
}
