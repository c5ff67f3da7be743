//! The writer thread: group commit of every write request into one transaction and one fsync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::read::{self, ReadPool};
use super::replies::{self, Route};
use super::seqs::{Kept, Seqs};
use super::{SqliteConfig, schema};
use crate::{
    AppendBatch, DefinitionRecord, Error, ListFilter, LoadedSaga, NewSaga, SagaPage, SagaRecord,
    StartOutcome, Store, StoreFuture, StoreStats,
};

/// The file name of the journal inside the data directory.
pub const JOURNAL_FILE: &str = "journal.sqlite3";

/// The counters behind `Store::stats`, written by whoever commits.
#[derive(Default)]
struct StatsCells {
    commits: AtomicU64,
    requests: AtomicU64,
    events: AtomicU64,
}

pub(super) enum Request {
    PutDefinition {
        name: String,
        body: String,
        now_ms: u64,
        reply: oneshot::Sender<Result<(DefinitionRecord, bool), Error>>,
    },
    Start {
        saga: NewSaga,
        reply: oneshot::Sender<Result<StartOutcome, Error>>,
    },
    Append {
        batch: AppendBatch,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Purge {
        before_ms: u64,
        limit: usize,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
}

/// The embedded journal: a SQLite file in WAL mode, written by one thread at a time.
///
/// Writes are group-committed by the writer thread. When a write finds no other in flight and
/// comes a while after the last commit (`QUIET_GAP`), its caller commits it itself instead:
/// handing it to the writer thread and the answer back costs two thread wake-ups, which on a
/// virtual machine's idle cores take tens of microseconds each (a lone saga waits for four
/// writes). That blocks the caller's thread for one commit, which is all there is to do then;
/// under load, writes queue for the writer.
pub struct SqliteStore {
    /// The writer's connection and what decides who commits: shared with the writer thread.
    committer: Arc<Committer>,
    requests: sender_slot::SenderSlot,
    readers: Arc<ReadPool>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Stopped once the writer has ended.
    checkpointer: std::sync::Mutex<Option<Checkpointer>>,
}

/// A write that comes this long after the last commit ended, with no other in flight, is
/// committed by its caller. Writes that come one at a time (a lone saga's, one HTTP round trip
/// apart) are that far apart; writes under load, or in a burst (recovery resuming thousands of
/// sagas, a task writing in a loop), follow each other within microseconds, and go to the
/// writer thread's group commit: committing them one by one on their callers' threads would
/// serialise them, each caller's thread blocked while the others' writes wait.
const QUIET_GAP: std::time::Duration = std::time::Duration::from_micros(50);

/// A caller commits its lone write only while commits take less than this. A commit blocks
/// the thread that makes it, and a caller's thread is an event loop serving other
/// connections: on a disk that has turned slow (a sync of tens of milliseconds), writes go to
/// the writer thread, so that only the sagas waiting for them wait. Syncs on these machines
/// take 0.1–1.3 ms.
const ALONE_COMMIT_MAX: std::time::Duration = std::time::Duration::from_millis(2);

/// The writer's connection, and what it keeps beside it.
pub(super) struct Writer {
    conn: Connection,
    seqs: Seqs,
}

/// The writer's connection, and the state that decides whether a write is committed by its
/// caller or by the writer thread. All commits, from either, go through it.
pub(super) struct Committer {
    writer: std::sync::Mutex<Writer>,
    stats: StatsCells,
    /// Writes submitted and not yet answered.
    in_flight: AtomicUsize,
    opened: Instant,
    /// When the last commit ended, in microseconds since `opened`.
    ended_us: AtomicU64,
    /// How long the last commit took, in microseconds.
    took_us: AtomicU64,
    /// Whether the writer thread's last batch held one write only: under load its batches hold
    /// many, and callers leave the commits to it even when a gap opens (a caller blocked in a
    /// commit holds up the answers its thread would otherwise be handling).
    lone: AtomicBool,
}

impl Committer {
    fn new(conn: Connection) -> Committer {
        Committer {
            writer: std::sync::Mutex::new(Writer {
                conn,
                seqs: Seqs::default(),
            }),
            stats: StatsCells::default(),
            in_flight: AtomicUsize::new(0),
            opened: Instant::now(),
            ended_us: AtomicU64::new(0),
            took_us: AtomicU64::new(0),
            lone: AtomicBool::new(true),
        }
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// The writer's connection, held: no commit runs until the guard is dropped. A poisoned
    /// lock means a caller panicked mid-commit; SQLite rolled back what it did not commit.
    pub(super) fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    /// Whether a write that comes now, with none in flight, may be committed by its caller.
    fn quiet(&self) -> bool {
        if !self.lone.load(Ordering::Relaxed)
            || self.took_us.load(Ordering::Relaxed) >= ALONE_COMMIT_MAX.as_micros() as u64
        {
            return false;
        }
        let ended = self.ended_us.load(Ordering::Relaxed);
        self.now_us().saturating_sub(ended) >= QUIET_GAP.as_micros() as u64
    }

    /// Counts `request` in flight, and commits it on the caller's thread when it is a saga's
    /// write, no other write is in flight, writes come one at a time, and the connection is
    /// free; otherwise gives it back for the writer thread, which uncounts it once answered.
    /// Definitions and purges always go to the writer thread: a purge deletes up to its limit
    /// of sagas, too long to hold a caller's thread for.
    fn commit_if_alone(&self, request: Request) -> Option<Request> {
        let saga_write = matches!(request, Request::Start { .. } | Request::Append { .. });
        if self.in_flight.fetch_add(1, Ordering::AcqRel) != 0 || !saga_write || !self.quiet() {
            return Some(request);
        }
        let Ok(mut writer) = self.writer.try_lock() else {
            return Some(request);
        };
        self.commit(&mut writer, vec![request], vec![None]);
        None
    }

    /// Commits a batch the writer thread took from its queue (waiting, if a caller is
    /// committing a lone write, for it to end).
    fn commit_queued(&self, jobs: Vec<Job>) {
        self.lone.store(jobs.len() == 1, Ordering::Relaxed);
        let (batch, routes) = jobs.into_iter().unzip();
        let mut writer = self.lock_writer();
        self.commit(&mut writer, batch, routes);
    }

    /// One transaction and one fsync for `batch`; answers every request of it (along its
    /// route, if it has one) and uncounts them.
    fn commit(&self, writer: &mut Writer, batch: Vec<Request>, routes: Vec<Option<Route>>) {
        let count = batch.len();
        let began = self.now_us();
        commit_batch(writer, batch, routes, &self.stats);
        let ended = self.now_us();
        self.took_us
            .store(ended.saturating_sub(began), Ordering::Relaxed);
        self.ended_us.store(ended, Ordering::Relaxed);
        self.in_flight.fetch_sub(count, Ordering::AcqRel);
    }
}

/// A request in the writer's queue, with where its answer goes.
type Job = (Request, Option<Route>);

/// A sender that `close` can take away, so the writer sees the channel end and stops.
mod sender_slot {
    use std::sync::RwLock;

    use tokio::sync::mpsc;

    use super::Job;

    pub(super) struct SenderSlot(RwLock<Option<mpsc::Sender<Job>>>);

    impl SenderSlot {
        pub(super) fn new(sender: mpsc::Sender<Job>) -> SenderSlot {
            SenderSlot(RwLock::new(Some(sender)))
        }

        pub(super) fn get(&self) -> Option<mpsc::Sender<Job>> {
            self.0.read().ok().and_then(|s| s.clone())
        }

        pub(super) fn take(&self) {
            if let Ok(mut slot) = self.0.write() {
                slot.take();
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the journal in `data_dir` and starts its writer.
    pub fn open(data_dir: &Path, config: SqliteConfig) -> Result<SqliteStore, Error> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(JOURNAL_FILE);
        SqliteStore::open_file(path, config)
    }

    /// Opens (creating if needed) the journal at `path`.
    pub fn open_file(path: PathBuf, config: SqliteConfig) -> Result<SqliteStore, Error> {
        let mut conn = schema::open(&path)?;
        schema::migrate(&mut conn)?;
        // The checkpointer's thread checkpoints, never a commit (`checkpoint.rs`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (tx, rx) = mpsc::channel(config.queue_max.max(1));
        let committer = Arc::new(Committer::new(conn));
        let checkpointer =
            Checkpointer::start(path.clone(), Arc::clone(&committer), config.wal_pages_max)?;
        let batch_max = config.batch_max.max(1);
        let writer = std::thread::Builder::new()
            .name("sagaflow-journal".into())
            .spawn({
                let committer = Arc::clone(&committer);
                move || writer_loop(&committer, rx, batch_max)
            })?;
        Ok(SqliteStore {
            committer,
            requests: sender_slot::SenderSlot::new(tx),
            readers: Arc::new(ReadPool::new(path, config.readers_max.max(1))),
            writer: std::sync::Mutex::new(Some(writer)),
            checkpointer: std::sync::Mutex::new(Some(checkpointer)),
        })
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Request,
    ) -> Result<T, Error> {
        let sender = self.requests.get().ok_or(Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        let Some(request) = self.committer.commit_if_alone(make(reply)) else {
            return answer.await.map_err(|_| Error::Closed)?;
        };
        if sender.send((request, Route::here())).await.is_err() {
            self.committer.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Closed);
        }
        answer.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.requests.take();
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
        {
            let _ = handle.join();
        }
        if let Ok(mut checkpointer) = self.checkpointer.lock() {
            checkpointer.take();
        }
    }
}

impl Store for SqliteStore {
    fn put_definition<'a>(
        &'a self,
        name: &'a str,
        body: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, (DefinitionRecord, bool)> {
        Box::pin(self.submit(move |reply| Request::PutDefinition {
            name: name.to_owned(),
            body: body.to_owned(),
            now_ms,
            reply,
        }))
    }

    fn get_definition<'a>(
        &'a self,
        name: &'a str,
        version: Option<u32>,
    ) -> StoreFuture<'a, Option<DefinitionRecord>> {
        let name = name.to_owned();
        Box::pin(
            self.readers
                .run(move |conn| read::get_definition(conn, &name, version)),
        )
    }

    fn list_definitions(&self) -> StoreFuture<'_, Vec<DefinitionRecord>> {
        Box::pin(self.readers.run(read::list_definitions))
    }

    fn start_saga(&self, saga: NewSaga) -> StoreFuture<'_, StartOutcome> {
        Box::pin(self.submit(move |reply| Request::Start { saga, reply }))
    }

    fn append(&self, batch: AppendBatch) -> StoreFuture<'_, ()> {
        Box::pin(self.submit(move |reply| Request::Append { batch, reply }))
    }

    fn purge_finished(&self, before_ms: u64, limit: usize) -> StoreFuture<'_, u64> {
        Box::pin(self.submit(move |reply| Request::Purge {
            before_ms,
            limit,
            reply,
        }))
    }

    fn get_saga<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LoadedSaga>> {
        let id = id.to_owned();
        Box::pin(self.readers.run(move |conn| read::get_saga(conn, &id)))
    }

    fn find_idempotency_key<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SagaRecord>> {
        let key = key.to_owned();
        Box::pin(
            self.readers
                .run(move |conn| read::find_idempotency_key(conn, &key)),
        )
    }

    fn list_sagas(&self, filter: ListFilter) -> StoreFuture<'_, SagaPage> {
        Box::pin(
            self.readers
                .run(move |conn| read::list_sagas(conn, &filter)),
        )
    }

    fn load_unfinished(&self) -> StoreFuture<'_, Vec<LoadedSaga>> {
        Box::pin(self.readers.run(read::load_unfinished))
    }

    fn count_by_status(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(self.readers.run(read::count_by_status))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.readers.run(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        }))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.committer.stats.commits.load(Ordering::Relaxed),
            requests: self.committer.stats.requests.load(Ordering::Relaxed),
            events: self.committer.stats.events.load(Ordering::Relaxed),
        }
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.requests.take();
            let handle = self.writer.lock().ok().and_then(|mut w| w.take());
            if let Some(handle) = handle {
                tokio::task::spawn_blocking(move || handle.join())
                    .await
                    .map_err(|e| Error::Corrupt(format!("joining the writer: {e}")))?
                    .map_err(|_| Error::Corrupt("the journal writer panicked".into()))?;
            }
            let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
            if let Some(checkpointer) = checkpointer {
                tokio::task::spawn_blocking(move || drop(checkpointer))
                    .await
                    .map_err(|e| Error::Corrupt(format!("joining the checkpointer: {e}")))?;
            }
            Ok(())
        })
    }
}

fn writer_loop(committer: &Committer, mut requests: mpsc::Receiver<Job>, batch_max: usize) {
    let mut batch = Vec::with_capacity(batch_max);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        committer.commit_queued(std::mem::take(&mut batch));
    }
}

/// One transaction and one fsync for `batch`; answers every request of it, along `routes`.
fn commit_batch(
    writer: &mut Writer,
    batch: Vec<Request>,
    routes: Vec<Option<Route>>,
    stats: &StatsCells,
) {
    let request_count = batch.len() as u64;
    let event_count: u64 = batch
        .iter()
        .map(|r| match r {
            Request::Start { saga, .. } => saga.events.len() as u64,
            Request::Append { batch, .. } => batch.events.len() as u64,
            Request::PutDefinition { .. } | Request::Purge { .. } => 0,
        })
        .sum();
    match write_batch(writer, &batch) {
        Ok(written) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.requests.fetch_add(request_count, Ordering::Relaxed);
            stats.events.fetch_add(event_count, Ordering::Relaxed);
            replies::deliver(batch.into_iter().zip(written).zip(routes));
        }
        Err(message) => {
            tracing::error!(error = %message, "journal commit failed");
            // Every request is answered with the error, including those that went well:
            // dropping them would read as `Error::Closed`.
            replies::deliver(batch.into_iter().zip(routes).map(|(request, route)| {
                let written = failed(&request, format!("commit failed: {message}"));
                ((request, written), route)
            }));
        }
    }
}

/// What one request wrote, to be answered once its transaction commits.
pub(super) enum Written {
    Definition(Result<(DefinitionRecord, bool), Error>),
    Start(Result<StartOutcome, Error>),
    Append(Result<(), Error>),
    Purge(Result<u64, Error>),
}

impl Written {
    fn is_ok(&self) -> bool {
        match self {
            Written::Definition(r) => r.is_ok(),
            Written::Start(r) => r.is_ok(),
            Written::Append(r) => r.is_ok(),
            Written::Purge(r) => r.is_ok(),
        }
    }
}

/// Writes `batch` in one transaction: what each request wrote, in order, once it committed.
fn write_batch(writer: &mut Writer, batch: &[Request]) -> Result<Vec<Written>, String> {
    // A request fails only on a broken invariant (an append to a saga the journal lacks, a start
    // under an id already taken) or a failing disk: the writer is the journal's only writer, so
    // nothing races it. So the batch first runs without
    // a savepoint per request (each costs two statements and a copy of every page it touches);
    // should a request fail, the transaction is rolled back and the batch runs again with each
    // request in its own savepoint, so that one that fails leaves the others be.
    let outcome = match run_batch(writer, batch, false)? {
        None => run_batch(writer, batch, true)?,
        done => done,
    };
    outcome.ok_or_else(|| "the batch failed with every request in its own savepoint".into())
}

/// Runs `batch` in one transaction and commits it. Without savepoints, `Ok(None)` when a request
/// failed (the transaction is then rolled back); with them, a request that fails is undone alone.
fn run_batch(
    writer: &mut Writer,
    batch: &[Request],
    savepoints: bool,
) -> Result<Option<Vec<Written>>, String> {
    let Writer { conn, seqs } = writer;
    seqs.roll_back();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        if !savepoints {
            let written = execute(&tx, seqs, request);
            if !written.is_ok() {
                // Dropping the transaction rolls it back.
                seqs.roll_back();
                return Ok(None);
            }
            results.push(written);
            continue;
        }
        // Cached statements: rusqlite's `savepoint()` would parse SQL twice per request.
        if let Err(e) = run_cached(&tx, "SAVEPOINT request") {
            results.push(failed(request, e.to_string()));
            continue;
        }
        let staged = seqs.staged_len();
        let written = execute(&tx, seqs, request);
        let released = if written.is_ok() {
            run_cached(&tx, "RELEASE request")
        } else {
            run_cached(&tx, "ROLLBACK TO request").and_then(|()| run_cached(&tx, "RELEASE request"))
        };
        if !written.is_ok() || released.is_err() {
            seqs.unstage_to(staged);
        }
        results.push(match released {
            Ok(()) => written,
            Err(e) => {
                // Its writes may be gone: the request must not be told they landed.
                tracing::error!(error = %e, "closing a request's savepoint failed");
                failed(
                    request,
                    format!("closing the request's savepoint failed: {e}"),
                )
            }
        });
    }
    if let Err(e) = tx.commit() {
        seqs.roll_back();
        return Err(e.to_string());
    }
    seqs.commit();
    Ok(Some(results))
}

fn execute(conn: &Connection, seqs: &mut Seqs, request: &Request) -> Written {
    match request {
        Request::PutDefinition {
            name, body, now_ms, ..
        } => Written::Definition(put_definition(conn, name, body, *now_ms)),
        Request::Start { saga, .. } => Written::Start(start_saga(conn, seqs, saga)),
        Request::Append { batch, .. } => Written::Append(append(conn, seqs, batch)),
        Request::Purge {
            before_ms, limit, ..
        } => Written::Purge(purge(conn, seqs, *before_ms, *limit)),
    }
}

/// A failure of the kind `request` is answered with.
fn failed(request: &Request, message: String) -> Written {
    let error = Error::Corrupt(message);
    match request {
        Request::PutDefinition { .. } => Written::Definition(Err(error)),
        Request::Start { .. } => Written::Start(Err(error)),
        Request::Append { .. } => Written::Append(Err(error)),
        Request::Purge { .. } => Written::Purge(Err(error)),
    }
}

/// Answers `request` with what it wrote (`execute` and `failed` keep their kinds equal).
pub(super) fn answer(request: Request, written: Written) {
    match (request, written) {
        (Request::PutDefinition { reply, .. }, Written::Definition(r)) => {
            let _ = reply.send(r);
        }
        (Request::Start { reply, .. }, Written::Start(r)) => {
            let _ = reply.send(r);
        }
        (Request::Append { reply, .. }, Written::Append(r)) => {
            let _ = reply.send(r);
        }
        (Request::Purge { reply, .. }, Written::Purge(r)) => {
            let _ = reply.send(r);
        }
        (request, _) => {
            debug_assert!(false, "a request paired with another kind's result");
            let mismatch = failed(&request, "internal error: mismatched journal result".into());
            answer(request, mismatch);
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn put_definition(
    conn: &Connection,
    name: &str,
    body: &str,
    now_ms: u64,
) -> Result<(DefinitionRecord, bool), Error> {
    if let Some(latest) = read::get_definition(conn, name, None)? {
        if latest.body == body {
            return Ok((latest, false));
        }
        let record = DefinitionRecord {
            name: name.to_owned(),
            version: latest.version + 1,
            body: body.to_owned(),
            created_at_ms: now_ms,
        };
        insert_definition(conn, &record)?;
        return Ok((record, true));
    }
    let record = DefinitionRecord {
        name: name.to_owned(),
        version: 1,
        body: body.to_owned(),
        created_at_ms: now_ms,
    };
    insert_definition(conn, &record)?;
    Ok((record, true))
}

fn insert_definition(conn: &Connection, record: &DefinitionRecord) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO definitions (name, version, body, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        record.name,
        record.version,
        record.body,
        record.created_at_ms as i64
    ])?;
    Ok(())
}

fn start_saga(conn: &Connection, seqs: &mut Seqs, saga: &NewSaga) -> Result<StartOutcome, Error> {
    let r = &saga.record;
    if let Some(key) = &r.idempotency_key
        && let Some(existing) = read::find_idempotency_key(conn, key)?
    {
        return Ok(StartOutcome::Existing(existing));
    }
    conn.prepare_cached(
        "INSERT INTO sagas (id, definition, version, status, created_at_ms, updated_at_ms, \
         idempotency_key, request_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.id,
        r.definition,
        r.version,
        r.status.as_str(),
        r.created_at_ms as i64,
        r.updated_at_ms as i64,
        r.idempotency_key,
        r.request_hash
    ])?;
    let seq = conn.last_insert_rowid();
    if !saga.events.is_empty() {
        insert_events(conn, seq, &saga.events, None)?;
    }
    if !r.status.is_terminal() {
        seqs.stage(
            &r.id,
            Kept {
                seq,
                status: r.status,
            },
        );
    }
    Ok(StartOutcome::Created)
}

/// Every append writes one journal row (an empty array if it has no events), so that the saga's
/// last row says where its `updated_at` is. An append that keeps the saga's status, as two of a
/// `saga-3`'s three do (a step's answer with the next step's attempt), leaves the saga's row
/// alone and writes its `updated_at` in its journal row's `at_ms` (see `read::SAGA_COLUMNS`);
/// one that changes the status updates the row, and its journal row's `at_ms` stays NULL.
fn append(conn: &Connection, seqs: &mut Seqs, batch: &AppendBatch) -> Result<(), Error> {
    let no_saga = || Error::Corrupt(format!("no saga {}", batch.saga_id));
    let kept = seqs.current(&batch.saga_id);
    let saga_seq = match kept {
        Some(kept) => kept.seq,
        None => {
            // Not kept (started before this process opened the journal, or past the cache's
            // bound): looked up, and kept from now on. Two cheap statements rather than
            // `UPDATE … RETURNING`, which buffers its result in an ephemeral table.
            conn.prepare_cached("SELECT seq FROM sagas WHERE id = ?1")?
                .query_row(params![batch.saga_id], |row| row.get(0))
                .optional()?
                .ok_or_else(no_saga)?
        }
    };
    // A kept row holds the status its last committed (or this transaction's) write gave it.
    let status_kept = kept.is_some_and(|kept| kept.status == batch.status);
    if batch.status.is_terminal() {
        // Nothing more is appended to it, but for a retry of `failed`, which looks it up.
        seqs.forget(&batch.saga_id);
    } else {
        seqs.stage(
            &batch.saga_id,
            Kept {
                seq: saga_seq,
                status: batch.status,
            },
        );
    }
    if status_kept && !batch.status.is_terminal() {
        // Only a purge deletes sagas, and it deletes terminal ones, which are never kept.
        return insert_events(conn, saga_seq, &batch.events, Some(batch.updated_at_ms));
    }
    let changed = conn
        .prepare_cached("UPDATE sagas SET status = ?2, updated_at_ms = ?3 WHERE seq = ?1")?
        .execute(params![
            saga_seq,
            batch.status.as_str(),
            batch.updated_at_ms as i64
        ])?;
    if changed == 0 {
        // Only a purge deletes sagas, and it forgets them: a kept `seq` always has its row.
        seqs.forget(&batch.saga_id);
        return Err(no_saga());
    }
    insert_events(conn, saga_seq, &batch.events, None)
}

/// One journal row for one write's events (a JSON array), under the saga's `seq`; `at_ms` is the
/// write's `updated_at` when the saga's row was left as it was.
fn insert_events(
    conn: &Connection,
    saga_seq: i64,
    events: &[sagaflow_core::Event],
    at_ms: Option<u64>,
) -> Result<(), Error> {
    let body = serde_json::to_string(events)?;
    conn.prepare_cached("INSERT INTO journal (saga_seq, body, at_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![saga_seq, body, at_ms.map(|at| at as i64)])?;
    Ok(())
}

fn purge(conn: &Connection, seqs: &mut Seqs, before_ms: u64, limit: usize) -> Result<u64, Error> {
    let doomed: Vec<(i64, String)> = conn
        .prepare_cached(
            // The partial index, named: without statistics the planner would pick the
            // status index and sort every finished saga.
            "SELECT seq, id FROM sagas INDEXED BY sagas_finished_by_time \
             WHERE status IN ('completed', 'compensated') \
             AND updated_at_ms < ?1 ORDER BY updated_at_ms LIMIT ?2",
        )?
        .query_map(params![before_ms as i64, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut events = conn.prepare_cached("DELETE FROM journal WHERE saga_seq = ?1")?;
    let mut sagas = conn.prepare_cached("DELETE FROM sagas WHERE seq = ?1")?;
    for (seq, id) in &doomed {
        events.execute(params![seq])?;
        sagas.execute(params![seq])?;
        // Terminal sagas are forgotten already; this keeps it so should one have been kept.
        seqs.forget(id);
    }
    Ok(doomed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committer whose last commit ended long ago (no sleeping for the gap to pass).
    fn committer() -> Committer {
        let mut committer =
            Committer::new(Connection::open_in_memory().expect("an in-memory database"));
        committer.opened = Instant::now()
            .checked_sub(std::time::Duration::from_secs(1))
            .expect("an instant a second ago");
        committer
    }

    #[test]
    fn a_lone_write_after_a_quiet_gap_may_be_committed_by_its_caller() {
        let committer = committer();
        assert!(committer.quiet());
    }

    #[test]
    fn writes_go_to_the_writer_while_its_batches_hold_many() {
        let committer = committer();
        committer.lone.store(false, Ordering::Relaxed);
        assert!(!committer.quiet());
    }

    #[test]
    fn writes_go_to_the_writer_while_commits_are_slow() {
        let committer = committer();
        committer
            .took_us
            .store(ALONE_COMMIT_MAX.as_micros() as u64, Ordering::Relaxed);
        assert!(
            !committer.quiet(),
            "a slow disk would block the caller's event loop"
        );
        committer.took_us.store(100, Ordering::Relaxed);
        assert!(committer.quiet());
    }
}
