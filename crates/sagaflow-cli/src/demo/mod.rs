//! `sagaflow demo`: the coordinator and the example shop's four services as separate
//! processes on loopback, a workload of orders that takes every path (with `--chaos`, the
//! coordinator killed and restarted mid-run), and the invariant check over every service's
//! own database.
//!
//! - `args.rs`: the flags;
//! - `run.rs`: one run from start to report, and `--check` on an earlier run's directory;
//! - `manifest.rs`: the data directory's layout and `demo.json`;
//! - `cluster.rs`: starting, restarting and stopping the processes; `children.rs`: child
//!   processes that never outlive the demo;
//! - `workload.rs`: placing the orders with bounded concurrency, and the progress bar;
//! - `chaos.rs`: when to kill the coordinator;
//! - `verify.rs`: reading what the check needs (databases, sagas);
//! - `report.rs`: the table and the JSON.

mod args;
mod chaos;
mod children;
mod cluster;
mod manifest;
mod report;
mod run;
mod verify;
mod workload;

pub use args::{DemoArgs, ShopServiceArgs};
pub use report::Report;
pub use run::{check_only, demo};
