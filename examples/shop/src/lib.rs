//! The example shop: four services, each with its own database, coordinated by Sagaflow's
//! `place-order` saga (create-order → reserve-stock → charge-card → book-shipment →
//! confirm-order).
//!
//! Run everything (the coordinator, the four services, a workload and the invariant check)
//! with one command:
//!
//! ```sh
//! cargo run -p sagaflow-cli -- demo --chaos
//! ```
//!
//! Or run each service by hand, each with its own SQLite file (or a PostgreSQL URL):
//!
//! ```sh
//! cargo run -p sagaflow-shop --bin shop-orders    -- --listen 127.0.0.1:8101 --db orders.db
//! cargo run -p sagaflow-shop --bin shop-inventory -- --listen 127.0.0.1:8102 --db inventory.db
//! cargo run -p sagaflow-shop --bin shop-payments  -- --listen 127.0.0.1:8103 \
//!     --db postgres://postgres@127.0.0.1:5432/postgres --pg-schema shop_payments
//! cargo run -p sagaflow-shop --bin shop-shipping  -- --listen 127.0.0.1:8104 --db shipping.db
//! ```
//!
//! The map:
//! - [`orders`], [`inventory`], [`payments`], [`shipping`]: each service's tables and business
//!   rules, which say no for real (a bad quantity, out of stock, card declined, no capacity).
//!   Written once against a small SQL interface (`sql.rs`) that runs on SQLite and PostgreSQL.
//! - [`Service`] and [`Op`] (`service.rs`): the routes of each service and what they run.
//! - [`Db`] and [`Target`] (`db.rs`): a service's database behind the SDK's participant ledger
//!   ([`sagaflow::participant`]), so every delivery is applied exactly once; and
//!   [`read_snapshot`], which reads a service's tables straight from its database.
//! - [`app`] (`app.rs`): a service's axum `Router`; [`chaos`]: fault injection (failures, lost
//!   answers, slow answers) from a seeded random number generator.
//! - [`run`] (`run.rs`): a service as a process ([`ServiceArgs`], used by the `shop-*`
//!   binaries and by `sagaflow shop-service`).
//! - [`saga`]: the `place-order` definition; [`workload`]: a reproducible mix of orders that
//!   takes every path; [`check`]: the invariant check over every service's rows.

#![warn(missing_docs)]

mod app;
pub mod catalogue;
pub mod chaos;
pub mod check;
mod db;
mod error;
pub mod input;
pub mod inventory;
pub mod orders;
pub mod payments;
mod run;
pub mod saga;
mod service;
pub mod shipping;
mod snapshot;
mod sql;
pub mod workload;

pub use app::app;
pub use db::{Db, Target, create_pg_schema, drop_pg_schema, read_snapshot};
pub use error::Error;
pub use run::{ServiceArgs, main, run, serve};
pub use service::{Op, Service};
pub use snapshot::Snapshot;
