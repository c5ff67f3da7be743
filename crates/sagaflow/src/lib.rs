//! The Sagaflow SDK: talk to a Sagaflow coordinator from Rust.
//!
//! - [`Client`] (in `client.rs`): a typed async client with one method per endpoint of the
//!   HTTP API: definitions, sagas, their history, cancel, retry, health.
//! - [`Error`] (in `error.rs`): the one error type. A server's error answer is an
//!   [`Error::Problem`] holding its RFC 9457 [`Problem`] (or [`Error::RetryLater`] when a
//!   transient answer carried `Retry-After`); a server that cannot be reached is
//!   [`Error::Unreachable`] with a short reason ("connection refused").
//! - [`retry`]: backoff with jitter, a shared retry budget, `Retry-After`, and the loop that
//!   uses them; [`Client::with_retry`] turns them on for calls that are safe to repeat.
//! - [`participant`]: helpers that make a participant's handlers exactly-once in its own
//!   database (SQLite or PostgreSQL), and a transaction retry for SQLSTATE 40001 / 40P01.
//! - [`Saga`] and [`Step`] (in `definition.rs`): a builder for [`DefinitionSpec`]s.
//! - The API's wire types, re-exported from `sagaflow-api` so users need only this crate.
//!
//! ```no_run
//! use sagaflow::{Client, RetrySpec, Saga, StartSaga, Step};
//!
//! # async fn example() -> Result<(), sagaflow::Error> {
//! let client = Client::new("http://127.0.0.1:7070")?;
//!
//! let definition = Saga::new("place-order")
//!     .timeout_ms(60_000)
//!     .step(
//!         Step::new("reserve-stock", "http://127.0.0.1:8101/reservations")
//!             .compensation("http://127.0.0.1:8101/reservations/cancel")
//!             .retry(RetrySpec { max_attempts: Some(5), ..RetrySpec::default() }),
//!     )
//!     .step(Step::new("ship", "http://127.0.0.1:8103/shipments"))
//!     .build();
//! let (registered, created) = client.apply_definition(&definition).await?;
//! println!("{} v{} (new: {created})", registered.name, registered.version);
//!
//! let start = StartSaga {
//!     definition: "place-order".to_owned(),
//!     version: None,
//!     input: serde_json::json!({ "sku": "A-1", "quantity": 2 }),
//! };
//! let saga = client.start_saga(&start, Some("order-1234"), Some(5_000)).await?;
//! println!("{} is {}", saga.id, saga.status);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
mod definition;
mod error;
pub mod participant;
pub mod retry;

pub use client::{Client, DefinitionView};
pub use definition::{Saga, Step};
pub use error::Error;

pub use sagaflow_api::{
    CallSpec, CompensationView, DefinitionCreated, DefinitionList, DefinitionSpec,
    DefinitionSummary, HistoryEntry, HistoryList, Problem, RetrySpec, SagaList, SagaSummary,
    SagaView, StartSaga, StepSpec, StepView,
};
