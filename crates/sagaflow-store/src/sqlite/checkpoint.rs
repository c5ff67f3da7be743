//! WAL checkpoints, off the commit path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit takes the WAL past 1,000 pages:
//! on the writer thread, or on the event loop that commits a lone write itself, which then
//! serves none of its connections for the checkpoint's copying and its two syncs (a sync of
//! the database file took 160–250 ms at times on session 11's disk: BENCHMARKS.md). So the
//! writer's connection has `wal_autocheckpoint = 0`, and a thread of its own, with its own
//! connection, checkpoints every `CHECKPOINT_EVERY` while commits go on beside it (`PASSIVE`).
//!
//! A checkpoint that runs beside commits copies the frames that were there when it began, and
//! the WAL only starts over from its beginning at a commit that finds every frame copied: under
//! steady writes that never happens, and the WAL would grow without end (510 MB in 10 s in a
//! trial). So once a pass finds the WAL longer than `SqliteConfig::wal_pages_max`, a second runs
//! holding the writer's lock, with no commit beside it: it copies what the previous left (a
//! millisecond or two) and the next commit starts the WAL over. Commits wait meanwhile; an
//! event loop never does (a lone write whose caller finds the lock taken goes to the writer
//! thread).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use super::write::Committer;
use crate::Error;

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// The checkpointer thread; stopped and joined when dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the journal at `path`, whose commits `committer` makes, holding
    /// them once the WAL is `wal_pages_max` pages long.
    pub(super) fn start(
        path: PathBuf,
        committer: Arc<Committer>,
        wal_pages_max: i64,
    ) -> Result<Checkpointer, Error> {
        let conn = schema::open(&path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sagaflow-checkpoint".into())
            .spawn(move || run(&conn, &committer, wal_pages_max, &stopped))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, committer: &Committer, wal_pages_max: i64, stopped: &mpsc::Receiver<()>) {
    let mut commits_seen = committer.commits();
    loop {
        match stopped.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped (the sender is dropped; nothing is ever sent).
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let commits = committer.commits();
        if commits == commits_seen {
            continue;
        }
        commits_seen = commits;
        let passes = passive(conn).and_then(|wal_pages| {
            if wal_pages < wal_pages_max {
                return Ok(());
            }
            // No commit beside this one: it copies every frame left, and the WAL starts over.
            let _writer = committer.lock_writer();
            passive(conn).map(|_| ())
        });
        if let Err(e) = passes {
            // The next pass tries again; meanwhile the WAL only grows.
            tracing::warn!(error = %e, "journal checkpoint failed");
        }
    }
}

/// One `PASSIVE` checkpoint: the WAL's length in pages when it began.
fn passive(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}
