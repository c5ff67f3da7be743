//! What goes in and out of the store.

use sagaflow_core::{Event, SagaStatus};

/// A stored definition: its canonical JSON body (every default filled in, no version field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionRecord {
    pub name: String,
    pub version: u32,
    pub body: String,
    pub created_at_ms: u64,
}

/// A saga's row: what the list shows, without its journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaRecord {
    pub id: String,
    pub definition: String,
    pub version: u32,
    pub status: SagaStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub idempotency_key: Option<String>,
    /// A digest of the start request, to tell a repeat from a different request with the same key.
    pub request_hash: Option<String>,
    /// The shard the saga belongs to, for ever (0 on a store that has no shards).
    pub shard: u32,
}

/// A shard's lease as its holder knows it. Every write a replica makes for a saga of the shard
/// carries it, and a store shared by replicas refuses the write once the lease's epoch moved on
/// ([`Error::Fenced`](crate::Error::Fenced)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    pub shard: u32,
    pub epoch: u64,
}

/// A saga to record, with its first events.
#[derive(Clone, Debug)]
pub struct NewSaga {
    pub record: SagaRecord,
    pub events: Vec<Event>,
    /// The lease of `record.shard` held by the writer; `None` writes without a fence.
    pub fence: Option<Fence>,
    /// The writer does not hold the saga's shard: the write also leaves a `start` message in the
    /// shard's inbox, in the same transaction, so that its owner picks the saga up.
    pub handoff: bool,
}

/// What `start_saga` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    Created,
    /// The idempotency key was taken by this saga; nothing was written.
    Existing(SagaRecord),
}

/// Events for one saga, and its status after them.
#[derive(Clone, Debug)]
pub struct AppendBatch {
    pub saga_id: String,
    pub events: Vec<Event>,
    pub status: SagaStatus,
    pub updated_at_ms: u64,
    /// The lease of the saga's shard held by the writer; `None` writes without a fence.
    pub fence: Option<Fence>,
}

/// A saga and its journal.
#[derive(Clone, Debug)]
pub struct LoadedSaga {
    pub record: SagaRecord,
    pub events: Vec<Event>,
}

/// What to list. `cursor` comes from the previous page's `next_cursor`.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub status: Option<SagaStatus>,
    pub definition: Option<String>,
    pub limit: usize,
    pub cursor: Option<i64>,
}

/// One page of sagas, newest first.
#[derive(Clone, Debug)]
pub struct SagaPage {
    pub items: Vec<SagaRecord>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// What a replica asks of a shard's owner through the shard's inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxKind {
    /// A saga was started by a replica that does not hold its shard: drive it.
    Start,
    /// Cancel the saga.
    Cancel,
    /// Resume the failed saga's compensations.
    Retry,
}

impl InboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxKind::Start => "start",
            InboxKind::Cancel => "cancel",
            InboxKind::Retry => "retry",
        }
    }

    pub fn parse(text: &str) -> Option<InboxKind> {
        match text {
            "start" => Some(InboxKind::Start),
            "cancel" => Some(InboxKind::Cancel),
            "retry" => Some(InboxKind::Retry),
            _ => None,
        }
    }
}

/// One message of a shard's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxItem {
    /// Pass to `ack` once the message is acted on.
    pub id: i64,
    pub shard: u32,
    pub saga_id: String,
    pub kind: InboxKind,
}
