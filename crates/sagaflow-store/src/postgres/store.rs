//! `PgStore`: the `Store` on PostgreSQL, a handle on the writer task and the read pool.

use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::write::{Op, ReplyTx, Request, Writer, now_ms};
use super::{PgConfig, connect, leases, read, schema};
use crate::{
    AppendBatch, DefinitionRecord, Error, Fence, InboxItem, InboxKind, Leases, ListFilter,
    LoadedSaga, NewSaga, SagaPage, SagaRecord, StartOutcome, Store, StoreFuture, StoreStats,
};

/// The counters behind `Store::stats`, written by the writer task.
#[derive(Default)]
pub(crate) struct StatsCells {
    pub(crate) commits: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) events: AtomicU64,
}

/// The journal on PostgreSQL: a writer task doing group commit, and a read pool.
pub struct PgStore {
    stats: std::sync::Arc<StatsCells>,
    /// Taken by `close`, so the writer sees the channel end, finishes the queue and stops.
    requests: RwLock<Option<mpsc::Sender<Request>>>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    readers: Pool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`; a schema may be
    /// chosen with `options=-c search_path=NAME`), applies any pending migration, and starts the
    /// writer. Must be called on a Tokio runtime, which the writer then runs on.
    pub async fn open(url: &str, config: PgConfig) -> Result<PgStore, Error> {
        migrate_with(url, &config).await?;
        // A writer that vanished mid-transaction must not hold its rows' locks for long: that
        // lock is what resolving a lost COMMIT waits for.
        let timeout_ms = config.idle_in_transaction_timeout.as_millis().max(1);
        // The writer's statements all find their rows by key. A new database has no statistics
        // until autovacuum's first analyze (a minute or more), and a plan prepared meanwhile
        // is kept: the batch's appends, one statement joining the sagas it updates, were
        // planned as a scan of every saga, run once per batch (half the store's rate in
        // `sagaflow bench`). Without sequential scans the planner takes the primary key.
        let writer_options =
            format!("-c idle_in_transaction_session_timeout={timeout_ms} -c enable_seqscan=off");
        let writes = connect::pool(
            connect::parse(url, config.connect_timeout, Some(&writer_options))?,
            1,
            config.connect_timeout,
        )?;
        let readers = connect::pool(
            connect::parse(url, config.connect_timeout, None)?,
            config.readers_max,
            config.connect_timeout,
        )?;
        let stats = std::sync::Arc::new(StatsCells::default());
        let mut writer = Writer::new(writes, config.clone(), std::sync::Arc::clone(&stats));
        writer.register(now_ms()).await?;
        let (tx, rx) = mpsc::channel(config.queue_max.max(1));
        let task = tokio::spawn(writer.run(rx));
        Ok(PgStore {
            stats,
            requests: RwLock::new(Some(tx)),
            writer: tokio::sync::Mutex::new(Some(task)),
            readers,
        })
    }

    /// Applies any pending migration to the database at `url` and returns: what `open` does
    /// first, for an operator who runs migrations on their own (`sagaflow migrate`). Safe to
    /// run from several processes at once.
    pub async fn migrate(url: &str) -> Result<(), Error> {
        migrate_with(url, &PgConfig::default()).await
    }

    async fn submit<T>(
        &self,
        op: Op,
        reply: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> ReplyTx,
    ) -> Result<T, Error> {
        let sender = self
            .requests
            .read()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(Error::Closed)?;
        let (tx, answer) = oneshot::channel();
        sender
            .send(Request {
                op,
                reply: reply(tx),
            })
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn take_sender(&self) {
        if let Ok(mut slot) = self.requests.write() {
            slot.take();
        }
    }
}

async fn migrate_with(url: &str, config: &PgConfig) -> Result<(), Error> {
    let pg = connect::parse(url, config.connect_timeout, None)?;
    let (mut client, connection) = pg.connect(tokio_postgres::NoTls).await.map_err(|e| {
        Error::Unavailable(format!(
            "connecting to {}: {}",
            connect::redact_url(url),
            connect::describe(&e)
        ))
    })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %connect::describe(&e), "migration connection ended");
        }
    });
    let migrated = schema::migrate(&mut client, now_ms() as u64).await;
    drop(client);
    let _ = driver.await;
    migrated
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The writer finishes what is queued on its own, then stops.
        self.take_sender();
    }
}

impl Store for PgStore {
    fn put_definition<'a>(
        &'a self,
        name: &'a str,
        body: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, (DefinitionRecord, bool)> {
        let op = Op::PutDefinition {
            name: name.to_owned(),
            body: body.to_owned(),
            now_ms,
        };
        Box::pin(self.submit(op, ReplyTx::Definition))
    }

    fn get_definition<'a>(
        &'a self,
        name: &'a str,
        version: Option<u32>,
    ) -> StoreFuture<'a, Option<DefinitionRecord>> {
        Box::pin(read::get_definition(&self.readers, name, version))
    }

    fn list_definitions(&self) -> StoreFuture<'_, Vec<DefinitionRecord>> {
        Box::pin(read::list_definitions(&self.readers))
    }

    fn start_saga(&self, saga: NewSaga) -> StoreFuture<'_, StartOutcome> {
        Box::pin(self.submit(Op::Start(saga), ReplyTx::Start))
    }

    fn append(&self, batch: AppendBatch) -> StoreFuture<'_, ()> {
        Box::pin(self.submit(Op::Append(batch), ReplyTx::Append))
    }

    fn purge_finished(&self, before_ms: u64, limit: usize) -> StoreFuture<'_, u64> {
        Box::pin(self.submit(Op::Purge { before_ms, limit }, ReplyTx::Purge))
    }

    fn get_saga<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<LoadedSaga>> {
        Box::pin(read::get_saga(&self.readers, id))
    }

    fn find_idempotency_key<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SagaRecord>> {
        Box::pin(read::find_idempotency_key(&self.readers, key))
    }

    fn list_sagas(&self, filter: ListFilter) -> StoreFuture<'_, SagaPage> {
        Box::pin(async move { read::list_sagas(&self.readers, &filter).await })
    }

    fn load_unfinished(&self) -> StoreFuture<'_, Vec<LoadedSaga>> {
        Box::pin(read::load_unfinished(&self.readers))
    }

    fn count_by_status(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(read::count_by_status(&self.readers))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(read::ping(&self.readers))
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            requests: self.stats.requests.load(Ordering::Relaxed),
            events: self.stats.events.load(Ordering::Relaxed),
        }
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.take_sender();
            let task = self.writer.lock().await.take();
            if let Some(task) = task {
                task.await
                    .map_err(|e| Error::Corrupt(format!("the journal writer failed: {e}")))?;
            }
            Ok(())
        })
    }
}

impl Leases for PgStore {
    fn init_cluster(&self, shards: u32) -> StoreFuture<'_, u32> {
        Box::pin(leases::init_cluster(&self.readers, shards))
    }

    fn heartbeat<'a>(&'a self, replica: &'a str, ttl: Duration) -> StoreFuture<'a, u32> {
        Box::pin(leases::heartbeat(&self.readers, replica, ttl))
    }

    fn renew<'a>(
        &'a self,
        replica: &'a str,
        held: &'a [Fence],
        ttl: Duration,
    ) -> StoreFuture<'a, Vec<Fence>> {
        Box::pin(leases::renew(&self.readers, replica, held, ttl))
    }

    fn acquire<'a>(
        &'a self,
        replica: &'a str,
        count_max: u32,
        ttl: Duration,
    ) -> StoreFuture<'a, Vec<Fence>> {
        Box::pin(leases::acquire(&self.readers, replica, count_max, ttl))
    }

    fn release<'a>(&'a self, replica: &'a str, held: &'a [Fence]) -> StoreFuture<'a, ()> {
        Box::pin(leases::release(&self.readers, replica, held))
    }

    fn leave<'a>(&'a self, replica: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(leases::leave(&self.readers, replica))
    }

    fn load_unfinished_in<'a>(&'a self, shards: &'a [u32]) -> StoreFuture<'a, Vec<LoadedSaga>> {
        Box::pin(leases::load_unfinished_in(&self.readers, shards))
    }

    fn post<'a>(
        &'a self,
        shard: u32,
        saga_id: &'a str,
        kind: InboxKind,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(leases::post(&self.readers, shard, saga_id, kind, at_ms))
    }

    fn inbox<'a>(&'a self, shards: &'a [u32], limit: usize) -> StoreFuture<'a, Vec<InboxItem>> {
        Box::pin(leases::inbox(&self.readers, shards, limit))
    }

    fn ack<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()> {
        Box::pin(leases::ack(&self.readers, ids))
    }
}

/// A random number from the standard library's per-process random keys, mixed with the time
/// (ids and jitter only: nothing here needs a cryptographic generator).
pub(crate) fn random_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((
        nanos,
        CALLS.fetch_add(1, Ordering::Relaxed),
        std::process::id(),
    ))
}
