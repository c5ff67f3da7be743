//! The store's one error type.

/// What can go wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A statement the database refused (the request alone failed), or a failed read.
    #[cfg(feature = "postgres")]
    #[error("postgres: {}", crate::postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
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
    /// No connection to the database, or it broke before the commit was sent: nothing of the
    /// write landed, so retrying it is safe.
    #[error("the database is unavailable, nothing was written: {0}")]
    Unavailable(String),
    /// Other writers kept conflicting with this one (SQLSTATE 40001 / 40P01) past the retries;
    /// nothing was written.
    #[error("the write kept conflicting with other writers and was given up: {0}")]
    Conflict(String),
    /// The connection broke after the commit was sent, and the writer could not learn whether
    /// it landed: retrying the write may record it twice.
    #[error("the connection broke during commit; whether the write landed is unknown: {0}")]
    CommitUnknown(String),
    /// The lease this write carried is no longer the shard's: another replica took the shard
    /// over (its epoch moved on). Nothing was written; this process must stop driving the
    /// shard's sagas.
    #[error("the lease of shard {shard} at epoch {epoch} is no longer held; nothing was written")]
    Fenced { shard: u32, epoch: u64 },
    /// The store's URL or settings are not usable.
    #[error("store configuration: {0}")]
    Config(String),
}
