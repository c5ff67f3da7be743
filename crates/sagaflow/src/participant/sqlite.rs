//! The ledger on SQLite: the business change and the record of its answer in one
//! `BEGIN IMMEDIATE` transaction, so concurrent deliveries of a step are serialized.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::plan::{Plan, Recorded, plan};
use super::{Answer, Delivery, Error, Kind, Outcome};

/// The ledger's table, created by [`SqliteLedger::open`] and [`SqliteLedger::from_connection`].
pub const LEDGER_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sagaflow_deliveries (
        saga_id    TEXT    NOT NULL,
        step       TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        status     INTEGER NOT NULL,
        body       TEXT    NOT NULL,
        replays    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (saga_id, step, kind)
    );";

/// A participant's SQLite database with its delivery ledger. One writer connection; the
/// handler's changes run on it, inside the ledger's transaction.
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteLedger {
    /// Opens (creating) the database at `path`, in WAL mode with `synchronous = FULL`, and
    /// creates the ledger table.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteLedger, Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        SqliteLedger::from_connection(conn)
    }

    /// Uses an open connection (its settings are the caller's), creating the ledger table.
    pub fn from_connection(conn: Connection) -> Result<SqliteLedger, Error> {
        conn.execute_batch(LEDGER_SCHEMA)?;
        Ok(SqliteLedger {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection (for the service's own schema and reads), off the async
    /// threads.
    pub async fn with_connection<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| Error::Database("the connection's lock is poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Database(format!("the database task failed: {e}")))?
    }

    /// Handles one delivery exactly once: a duplicate gets the recorded answer, a compensation
    /// for an action never seen is recorded and answered 2xx, an action after its own
    /// compensation is refused `409`; otherwise `f` runs and its outcome is recorded in the
    /// same transaction. When `f` fails, everything is rolled back and `Error::Handler` is
    /// returned (answered 500: Sagaflow retries).
    pub async fn handle<F, E>(&self, delivery: Delivery, f: F) -> Result<Answer, Error>
    where
        F: FnOnce(&Transaction<'_>, &Delivery) -> Result<Outcome, E> + Send + 'static,
        E: std::fmt::Display,
    {
        self.with_connection(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let action = recorded(&tx, &delivery, Kind::Action)?;
            let compensation = recorded(&tx, &delivery, Kind::Compensation)?;
            let answer = match plan(delivery.kind, action.as_ref(), compensation.as_ref()) {
                Plan::Replay(recorded) => {
                    tx.execute(
                        "UPDATE sagaflow_deliveries SET replays = replays + 1 \
                         WHERE saga_id = ?1 AND step = ?2 AND kind = ?3",
                        params![delivery.saga_id, delivery.step, delivery.kind.as_str()],
                    )?;
                    Answer {
                        status: recorded.status,
                        body: recorded.body,
                        replayed: true,
                    }
                }
                Plan::RecordOnly(recorded) => {
                    record(&tx, &delivery, &recorded)?;
                    Answer {
                        status: recorded.status,
                        body: recorded.body,
                        replayed: false,
                    }
                }
                Plan::Run => {
                    let outcome = f(&tx, &delivery).map_err(|e| Error::Handler(e.to_string()))?;
                    let (status, body) = outcome.answer();
                    record(
                        &tx,
                        &delivery,
                        &Recorded {
                            status,
                            body: body.clone(),
                        },
                    )?;
                    Answer {
                        status,
                        body,
                        replayed: false,
                    }
                }
            };
            tx.commit()?;
            Ok(answer)
        })
        .await
    }

    /// How many duplicate deliveries the ledger answered from its records.
    pub async fn duplicates(&self) -> Result<u64, Error> {
        self.with_connection(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COALESCE(SUM(replays), 0) FROM sagaflow_deliveries",
                [],
                |row| row.get(0),
            )?;
            Ok(n as u64)
        })
        .await
    }
}

fn recorded(tx: &Transaction<'_>, d: &Delivery, kind: Kind) -> Result<Option<Recorded>, Error> {
    let row = tx
        .prepare_cached(
            "SELECT status, body FROM sagaflow_deliveries \
             WHERE saga_id = ?1 AND step = ?2 AND kind = ?3",
        )?
        .query_row(params![d.saga_id, d.step, kind.as_str()], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    Ok(row.map(|(status, body)| Recorded {
        status: status as u16,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    }))
}

fn record(tx: &Transaction<'_>, d: &Delivery, recorded: &Recorded) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO sagaflow_deliveries (saga_id, step, kind, status, body) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        d.saga_id,
        d.step,
        d.kind.as_str(),
        i64::from(recorded.status),
        recorded.body.to_string()
    ])?;
    Ok(())
}
