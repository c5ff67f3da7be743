//! Shards and their leases, for several coordinators sharing one database.
//!
//! A cluster has a fixed number of shards, chosen when it is created. Every saga belongs to one
//! shard. A replica drives the sagas of the shards it holds a lease on: it renews its leases
//! well within their time to live, takes expired or free shards up to its fair share, and gives
//! shards back (at once on shutdown, one at a time when others need them). Taking a shard bumps
//! its epoch; every write for a saga carries the lease ([`Fence`]) it was made under, and the
//! store refuses it once the epoch moved on, so a replica that was paused past its lease can
//! record nothing for sagas it no longer owns. Lease times are the database's clock, never a
//! replica's.
//!
//! Replicas reach a shard's owner through the shard's inbox: a start made by a replica that
//! does not hold the saga's shard, and cancels and retries of sagas owned elsewhere.

use std::time::Duration;

use crate::{Fence, InboxItem, InboxKind, LoadedSaga, StoreFuture};

/// The lease side of a store shared by replicas. Every call is one short transaction.
pub trait Leases: Send + Sync {
    /// Creates the cluster with `shards` shards unless it exists; answers the shard count it
    /// has (the one it was created with: it never changes).
    fn init_cluster(&self, shards: u32) -> StoreFuture<'_, u32>;

    /// Records that `replica` is alive for `ttl` more; answers how many replicas are alive,
    /// this one included.
    fn heartbeat<'a>(&'a self, replica: &'a str, ttl: Duration) -> StoreFuture<'a, u32>;

    /// Extends the leases in `held` that `replica` still holds at their epoch by `ttl`; answers
    /// those (the others were lost).
    fn renew<'a>(
        &'a self,
        replica: &'a str,
        held: &'a [Fence],
        ttl: Duration,
    ) -> StoreFuture<'a, Vec<Fence>>;

    /// Takes up to `count_max` shards that are free or whose lease expired, bumping each one's
    /// epoch; answers the new leases.
    fn acquire<'a>(
        &'a self,
        replica: &'a str,
        count_max: u32,
        ttl: Duration,
    ) -> StoreFuture<'a, Vec<Fence>>;

    /// Gives leases back: each shard is free at once, at a new epoch (so no write made under
    /// the old lease can land afterwards).
    fn release<'a>(&'a self, replica: &'a str, leases: &'a [Fence]) -> StoreFuture<'a, ()>;

    /// Forgets the replica (graceful shutdown), so the others' fair share grows at once.
    fn leave<'a>(&'a self, replica: &'a str) -> StoreFuture<'a, ()>;

    /// Every unfinished saga of the given shards, with its journal.
    fn load_unfinished_in<'a>(&'a self, shards: &'a [u32]) -> StoreFuture<'a, Vec<LoadedSaga>>;

    /// Leaves a message for the owner of `shard`.
    fn post<'a>(
        &'a self,
        shard: u32,
        saga_id: &'a str,
        kind: InboxKind,
        at_ms: u64,
    ) -> StoreFuture<'a, ()>;

    /// Up to `limit` messages of the given shards, oldest first. They stay until acked.
    fn inbox<'a>(&'a self, shards: &'a [u32], limit: usize) -> StoreFuture<'a, Vec<InboxItem>>;

    /// Removes messages that were acted on.
    fn ack<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()>;
}
