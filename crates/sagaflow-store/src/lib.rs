//! The Sagaflow journal.
//!
//! - [`Store`]: the backend-neutral trait the engine and the API use: append events (group
//!   committed), start sagas atomically with their `Idempotency-Key`, definitions with versions,
//!   queries, and loading what is unfinished after a restart.
//! - [`sqlite`]: the embedded backend (the default): one writer thread doing group commit over a
//!   WAL-mode SQLite file with `synchronous = FULL`, and a small pool of read connections.
//! - [`postgres`] (feature `postgres`, on by default): the shared backend for several
//!   coordinators, in SQL that CockroachDB also speaks: the same group commit over pipelined
//!   statements, migrations at open, conflict retries.
//! - [`leases`]: shards, their leases and fencing epochs, and shard inboxes, for replicas that
//!   share a store.
//! - [`conformance`]: the suite every backend must pass, written only against [`Store`].

pub mod conformance;
pub mod error;
pub mod leases;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
pub mod types;

use std::future::Future;
use std::pin::Pin;

pub use error::Error;
pub use leases::Leases;
pub use types::{
    AppendBatch, DefinitionRecord, Fence, InboxItem, InboxKind, ListFilter, LoadedSaga, NewSaga,
    SagaPage, SagaRecord, StartOutcome,
};

/// What the journal has done since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Durable writes (transactions committed, each one fsync).
    pub commits: u64,
    /// Write requests those commits carried (group commit puts many in one).
    pub requests: u64,
    /// Events those requests appended.
    pub events: u64,
}

/// A boxed future, so that `Store` can be used as `Arc<dyn Store>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// The journal. Every write is durable (fsync'd) when its future resolves.
pub trait Store: Send + Sync + 'static {
    /// Registers a definition body under `name`: an identical body to the latest version returns
    /// that version (`created == false`), a different one creates the next version.
    fn put_definition<'a>(
        &'a self,
        name: &'a str,
        body: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, (DefinitionRecord, bool)>;

    /// A definition's given version, or its latest when `version` is `None`.
    fn get_definition<'a>(
        &'a self,
        name: &'a str,
        version: Option<u32>,
    ) -> StoreFuture<'a, Option<DefinitionRecord>>;

    /// The latest version of every definition, by name.
    fn list_definitions(&self) -> StoreFuture<'_, Vec<DefinitionRecord>>;

    /// Records a new saga and its first events in one durable write. When the saga carries an
    /// idempotency key that is already taken, nothing is written and the holder is returned.
    fn start_saga(&self, saga: NewSaga) -> StoreFuture<'_, StartOutcome>;

    /// Appends events to a saga's journal and sets its status, durably.
    fn append(&self, batch: AppendBatch) -> StoreFuture<'_, ()>;

    /// One saga's record and whole journal, oldest event first.
    fn get_saga<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LoadedSaga>>;

    /// The saga holding an idempotency key, if any.
    fn find_idempotency_key<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SagaRecord>>;

    /// Sagas newest first, keyset-paged so paging never skips or repeats a saga.
    fn list_sagas(&self, filter: ListFilter) -> StoreFuture<'_, SagaPage>;

    /// Deletes up to `limit` sagas that ended `completed` or `compensated` before `before_ms`,
    /// with their journals (retention). `failed` sagas are kept: they wait for a person.
    /// Returns how many were deleted.
    fn purge_finished(&self, before_ms: u64, limit: usize) -> StoreFuture<'_, u64>;

    /// Every saga that is not terminal, with its journal, oldest saga first.
    fn load_unfinished(&self) -> StoreFuture<'_, Vec<LoadedSaga>>;

    /// Counts of sagas by status (all of them, terminal ones too).
    fn count_by_status(&self) -> StoreFuture<'_, Vec<(String, u64)>>;

    /// Whether the store answers (a cheap read).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Shards and leases, on a store several coordinators share; `None` on a store that one
    /// process owns (the embedded journal), where every write is that process's.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// Counters of the journal's work since it opened (for metrics and the benchmark).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Flushes what is queued and stops the writer. Later writes fail with `Error::Closed`.
    fn close(&self) -> StoreFuture<'_, ()>;
}
