//! The store's one error type.

/// What can go wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the journal is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
    #[error("the store's write queue is full")]
    Overloaded,
}
