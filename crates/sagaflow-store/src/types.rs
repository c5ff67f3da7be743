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
}

/// A saga to record, with its first events.
#[derive(Clone, Debug)]
pub struct NewSaga {
    pub record: SagaRecord,
    pub events: Vec<Event>,
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
