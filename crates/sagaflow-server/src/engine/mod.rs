//! The engine owns live sagas: one task per saga that decides, journals, then calls.

mod actor;
mod cluster;
mod definitions;
mod dispatcher;
mod handle;
mod http1;
mod lease;

pub use dispatcher::failure_kind_name;
pub use handle::{Engine, EngineError, StartRequest, Started};
pub(crate) use http1::sweep_idle as sweep_idle_connections;
