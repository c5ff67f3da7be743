//! The embedded SQLite backend.

mod checkpoint;
mod read;
mod replies;
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
    /// The WAL's length, in pages, past which the checkpointer holds commits for the
    /// millisecond or two it takes to let the WAL start over (`checkpoint.rs`): the bound of
    /// the WAL file under writes that never pause, give or take one checkpoint period's writes.
    pub wal_pages_max: i64,
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            batch_max: 1024,
            queue_max: 16 * 1024,
            readers_max: 4,
            wal_pages_max: 4096,
        }
    }
}
