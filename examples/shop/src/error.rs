//! The shop's one error type.

/// Why a service, or a read of its database, failed. Business refusals are not errors: they
/// are [`Outcome::Refused`](sagaflow::participant::Outcome) answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A SQLite database failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL database failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The participant helpers failed (their ledger, or a handler).
    #[error(transparent)]
    Participant(#[from] sagaflow::participant::Error),
    /// A row read back does not have the shape the service wrote.
    #[error("unexpected row: {0}")]
    Row(String),
    /// The `--db` target or another setting is unusable.
    #[error("{0}")]
    Config(String),
    /// Binding the listener or serving failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
