//! Participant helpers: exactly-once effects on top of Sagaflow's at-least-once delivery.
//!
//! Sagaflow may deliver an action or a compensation more than once (a lost answer, a
//! coordinator restart). A participant built with these helpers runs its business change and
//! the record of its answer in **one local transaction in its own database**, keyed by the
//! delivery's `Idempotency-Key`, so that:
//!
//! - a repeated delivery gets the recorded answer again and changes nothing (a *duplicate*);
//! - a compensation for an action that never arrived is recorded and answered 2xx, changing
//!   nothing (there is nothing to undo);
//! - an action that arrives after its own compensation is refused with a business 4xx (`409`)
//!   and changes nothing (the saga has moved on; applying it now would leak an effect).
//!
//! The pieces:
//! - [`Delivery`]: what Sagaflow sent (headers and body); an axum extractor.
//! - [`Outcome`]: what the handler decided: [`Outcome::Done`] with the step's output, or
//!   [`Outcome::Refused`] (the business said no).
//! - [`Answer`]: what to send back (an axum response), marked when it is a replay.
//! - [`SqliteLedger`] (feature `sqlite`) and [`PgLedger`] (feature `postgres`): the ledger
//!   tables and the transaction that ties the change to its record. Same behaviour, same tests.
//! - [`retry_transaction`] (feature `postgres`): re-runs a transaction that PostgreSQL
//!   SERIALIZABLE or CockroachDB aborted with SQLSTATE 40001 / 40P01.
//!
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "sqlite"))]
//! # mod example {
//! use std::sync::Arc;
//! use axum::{Router, extract::State, routing::post};
//! use sagaflow::participant::{Answer, Delivery, Error, Outcome, SqliteLedger};
//!
//! async fn reserve(State(ledger): State<Arc<SqliteLedger>>, delivery: Delivery)
//!     -> Result<Answer, Error> {
//!     ledger.handle(delivery, |tx, d| {
//!         let sku = d.input["sku"].as_str().unwrap_or_default().to_owned();
//!         let changed = tx.execute(
//!             "UPDATE stock SET available = available - 1 WHERE sku = ?1 AND available > 0",
//!             [&sku],
//!         )?;
//!         if changed == 0 {
//!             return Ok::<_, rusqlite::Error>(Outcome::refused(422, "out of stock", format!("no {sku} left")));
//!         }
//!         Ok(Outcome::done(serde_json::json!({ "reserved": sku })))
//!     }).await
//! }
//!
//! pub fn app(ledger: Arc<SqliteLedger>) -> Router {
//!     Router::new().route("/reservations", post(reserve)).with_state(ledger)
//! }
//! # }
//! ```

mod delivery;
mod error;
mod outcome;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use delivery::{Delivery, Kind};
pub use error::Error;
pub use outcome::{Answer, Outcome};
pub use plan::{Plan, Recorded, plan};
#[cfg(feature = "postgres")]
pub use postgres::{PgLedger, is_retryable_sqlstate, retry_transaction};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteLedger;
