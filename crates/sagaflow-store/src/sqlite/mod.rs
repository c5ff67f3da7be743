//! The embedded SQLite backend.

mod read;
mod schema;
mod seqs;
mod write;

pub use write::{JOURNAL_FILE, SqliteStore};

/// Settings of the SQLite journal.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Requests one durable write may carry (one transaction, one fsync).
    pub batch_max: usize,
    /// Requests waiting for the writer; when full, writers wait (back-pressure).
    pub queue_max: usize,
    /// Read connections (queries run beside the writer in WAL mode).
    pub readers_max: usize,
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            batch_max: 1024,
            queue_max: 16 * 1024,
            readers_max: 4,
        }
    }
}
