//! The engine's handle: starts, reads, cancels and retries sagas; recovers them after a restart;
//! drains on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use sagaflow_api::SagaView;
use sagaflow_core::{
    Command, Context, Decision, Definition, DefinitionLimits, Event, Payload, Rejection, SagaState,
    SagaStatus, decide, decide_and_apply,
};
use sagaflow_store::{
    AppendBatch, Fence, InboxKind, LoadedSaga, NewSaga, SagaRecord, StartOutcome, Store,
};

use super::actor::{self, Msg};
use super::definitions::Definitions;
use super::dispatcher::Dispatcher;
use super::lease::Lease;
use crate::clock::now_ms;
use crate::config::{ClusterSettings, Limits};
use crate::metrics::{Metrics, StatusLabel};

/// Sagas whose recovery writes are in flight at once after a restart.
const RECOVERY_CONCURRENCY_MAX: usize = 512;

/// How often retention looks for finished sagas to purge.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// Sagas one purge deletes at most (one journal write).
const RETENTION_BATCH_MAX: usize = 500;

/// How often a long poll on a saga driven by another replica reads it again.
const REMOTE_WAIT_POLL: Duration = Duration::from_millis(50);

/// Why the engine refused or failed a request; the API maps each to a problem.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no saga {0}")]
    SagaNotFound(String),
    #[error("no definition {0}")]
    DefinitionNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used for a different request (saga {0})")]
    IdempotencyMismatch(String),
    #[error("{0} sagas are in flight, the configured limit")]
    Overloaded(usize),
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    /// The shard this replica placed a new saga in was taken over as it was written: nothing
    /// was written, and a retry (here or on another replica) places it anew.
    #[error("the saga's shard moved to another replica as it started; nothing was written")]
    ShardMoved,
    #[error("store: {0}")]
    Store(#[from] sagaflow_store::Error),
    #[error("{0}")]
    Internal(String),
}

/// A request to start a saga, validated by the API.
pub struct StartRequest {
    pub definition: String,
    pub version: Option<u32>,
    pub input: Payload,
    pub idempotency_key: Option<String>,
    /// A digest of the request, to tell a repeat from a reuse of the key (with a key only).
    pub request_hash: Option<String>,
    /// Whether the caller answers with the saga as accepted (a caller that waits for the end
    /// answers with the final view instead, and need not pay for this one).
    pub want_view: bool,
}

/// The answer to a start.
pub struct Started {
    pub id: String,
    /// `false` when an idempotent repeat returned the saga already started.
    pub created: bool,
    /// The saga as it was accepted (for a new saga; a repeat must read it).
    pub view: Option<SagaView>,
}

/// A live saga's status, and its final view (`SagaView` as JSON) once it is terminal.
pub(super) type Progress = (SagaStatus, Option<Bytes>);

/// A live saga, as the engine reaches it.
pub(super) struct LiveSaga {
    pub tx: mpsc::Sender<Msg>,
    pub status: watch::Receiver<Progress>,
}

/// The shards this replica holds leases on.
pub(super) struct Shards {
    /// The cluster's shard count (1 on the embedded store, 0 until the replica joined).
    pub count: u32,
    pub held: BTreeMap<u32, Arc<Lease>>,
    /// Round-robin position for placing new sagas.
    next: usize,
}

pub(super) struct Inner {
    pub store: Arc<dyn Store>,
    pub cluster: ClusterSettings,
    pub replica_id: String,
    pub shards: Mutex<Shards>,
    /// The embedded store's one lease: never lapses, fences nothing.
    standing: Arc<Lease>,
    /// Sagas whose task stopped on a failed write while their shard stayed ours: resumed from
    /// the journal by the lease keeper.
    /// Saga id → its shard.
    pub stalled: Mutex<HashMap<String, u32>>,
    pub definitions: Definitions,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub live: Mutex<HashMap<String, LiveSaga>>,
    pub live_changed: Notify,
    pub draining: watch::Sender<bool>,
    active: Arc<Semaphore>,
    /// Held while a saga is resumed from the journal (recovery, takeover, inbox, retry), so
    /// that one saga never gets two tasks.
    pub resume_lock: tokio::sync::Mutex<()>,
    pub ready: AtomicBool,
    /// The event loops sagas resumed from the journal are spread over (see the server's
    /// `loops.rs`); a saga started by a request runs on the loop that serves it.
    loops: std::sync::OnceLock<Vec<tokio::runtime::Handle>>,
    next_loop: std::sync::atomic::AtomicUsize,
}

impl Inner {
    /// Whether the store is shared by replicas (leases, fencing, inboxes).
    pub fn is_clustered(&self) -> bool {
        self.store.leases().is_some()
    }

    /// The loop the next resumed saga goes to, in turn; none without loops (this one, then).
    fn next_loop(&self) -> Option<tokio::runtime::Handle> {
        let loops = self.loops.get()?;
        let index = self.next_loop.fetch_add(1, Ordering::Relaxed);
        loops.get(index % loops.len()).cloned()
    }

    /// The lease to place a new saga under: the standing one on the embedded store, else one
    /// of the valid leases held, in turn; `None` when this replica holds no valid lease.
    fn placement(&self) -> Option<Arc<Lease>> {
        if !self.is_clustered() {
            return Some(Arc::clone(&self.standing));
        }
        let mut shards = self.shards.lock();
        let held = shards.held.len();
        if held == 0 {
            return None;
        }
        let first = shards.next % held;
        shards.next = shards.next.wrapping_add(1);
        // From this start's turn on, the first lease still valid (usually the first one seen).
        shards
            .held
            .values()
            .cycle()
            .skip(first)
            .take(held)
            .find(|l| l.is_valid())
            .cloned()
    }

    /// The valid lease this process holds on `shard`, if any.
    pub fn lease_of(&self, shard: u32) -> Option<Arc<Lease>> {
        if !self.is_clustered() {
            return Some(Arc::clone(&self.standing));
        }
        self.shards
            .lock()
            .held
            .get(&shard)
            .filter(|l| l.is_valid())
            .cloned()
    }

    /// The shard a saga started by a replica without leases goes to.
    fn shard_for(&self, id: &str) -> u32 {
        let count = self.shards.lock().count.max(1);
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % u64::from(count)) as u32
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, limits: Limits, metrics: Arc<Metrics>) -> Engine {
        Engine::with_cluster(store, limits, ClusterSettings::default(), metrics)
    }

    /// An engine whose store may be shared by replicas, split as `cluster` says.
    pub fn with_cluster(
        store: Arc<dyn Store>,
        limits: Limits,
        cluster: ClusterSettings,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let dispatcher = Dispatcher::new(
            limits.calls_in_flight_max,
            limits.output_bytes_max,
            Arc::clone(&metrics),
        );
        let (draining, _) = watch::channel(false);
        let mut cluster = cluster;
        cluster.lease_ttl = cluster.lease_ttl.max(crate::config::LEASE_TTL_MIN);
        cluster.shards = cluster.shards.clamp(1, crate::config::SHARDS_MAX);
        let clustered = store.leases().is_some();
        let standing = Arc::new(Lease::standing());
        let mut held = BTreeMap::new();
        if !clustered {
            held.insert(0, Arc::clone(&standing));
        }
        let replica_id = cluster
            .replica_id
            .clone()
            .unwrap_or_else(super::cluster::random_replica_id);
        Engine {
            inner: Arc::new(Inner {
                store,
                cluster,
                replica_id,
                shards: Mutex::new(Shards {
                    count: if clustered { 0 } else { 1 },
                    held,
                    next: 0,
                }),
                standing,
                stalled: Mutex::new(HashMap::new()),
                definitions: Definitions::default(),
                dispatcher,
                metrics,
                active: Arc::new(Semaphore::new(limits.sagas_active_max.max(1))),
                limits,
                live: Mutex::new(HashMap::new()),
                live_changed: Notify::new(),
                draining,
                resume_lock: tokio::sync::Mutex::new(()),
                ready: AtomicBool::new(false),
                loops: std::sync::OnceLock::new(),
                next_loop: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Spreads the sagas resumed from the journal (at recovery, takeover, retry) over `loops`,
    /// in turn, instead of running them all where they were resumed. Set once, before
    /// recovery; later calls change nothing.
    pub fn spread_resumed_over(&self, loops: Vec<tokio::runtime::Handle>) {
        if !loops.is_empty() {
            let _ = self.inner.loops.set(loops);
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn definition_limits(&self) -> DefinitionLimits {
        DefinitionLimits {
            steps_max: self.inner.limits.steps_max,
            ..DefinitionLimits::default()
        }
    }

    /// Whether recovery is done and the engine is not draining.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !*self.inner.draining.borrow()
    }

    /// Registers a definition; `true` when a new version was created.
    pub async fn put_definition(
        &self,
        definition: Definition,
    ) -> Result<(Arc<Definition>, bool), EngineError> {
        let mut body_def = definition;
        body_def.version = 0;
        let body = serde_json::to_string(&body_def)
            .map_err(|e| EngineError::Internal(format!("encoding a definition: {e}")))?;
        let (record, created) = self
            .inner
            .store
            .put_definition(&body_def.name, &body, now_ms())
            .await?;
        body_def.version = record.version;
        let definition = Arc::new(body_def);
        self.inner
            .definitions
            .remember(Arc::clone(&definition), true);
        Ok((definition, created))
    }

    /// A definition by name, latest version unless one is given.
    pub async fn definition(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Arc<Definition>>, EngineError> {
        self.inner
            .definitions
            .get(self.inner.store.as_ref(), name, version)
            .await
    }

    /// Starts a saga. When this returns `created`, the saga is durable.
    pub async fn start(&self, request: StartRequest) -> Result<Started, EngineError> {
        if *self.inner.draining.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(key) = &request.idempotency_key
            && let Some(existing) = self.inner.store.find_idempotency_key(key).await?
        {
            return repeat(existing, request.request_hash.as_deref());
        }
        let name = &request.definition;
        let definition = self
            .definition(name, request.version)
            .await?
            .ok_or_else(|| {
                EngineError::DefinitionNotFound(match request.version {
                    Some(v) => format!("{name} v{v}"),
                    None => name.clone(),
                })
            })?;
        let permit = Arc::clone(&self.inner.active)
            .try_acquire_owned()
            .map_err(|_| EngineError::Overloaded(self.inner.limits.sagas_active_max))?;
        let now = now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        let (mut state, started) =
            SagaState::start(id.clone(), definition, request.input, trace_id(), now);
        let decision = decide_and_apply(&mut state, Command::Wake, context(now))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut events = Vec::with_capacity(1 + decision.events.len());
        events.push(started);
        events.extend(decision.events);
        let lease = self.inner.placement();
        let shard = match &lease {
            Some(lease) => lease.shard(),
            None => self.inner.shard_for(&id),
        };
        let record = SagaRecord {
            id: id.clone(),
            definition: state.definition.name.clone(),
            version: state.definition.version,
            status: state.status,
            created_at_ms: now,
            updated_at_ms: state.updated_at_ms,
            idempotency_key: request.idempotency_key.clone(),
            request_hash: request.request_hash.clone(),
            shard,
        };
        let started_at = std::time::Instant::now();
        let saga = NewSaga {
            record,
            events,
            fence: lease.as_ref().and_then(|l| l.fence),
            // Without a lease here, the shard's owner picks the saga up from its inbox.
            handoff: lease.is_none(),
        };
        let outcome = match self.inner.store.start_saga(saga).await {
            Ok(outcome) => outcome,
            Err(sagaflow_store::Error::Fenced { .. }) => {
                // The lease was lost a moment ago; nothing was written, so the client's retry
                // is safe and is placed under another lease.
                self.inner.metrics.fenced_writes.inc();
                if let Some(lease) = &lease {
                    lease.revoke();
                }
                return Err(EngineError::ShardMoved);
            }
            Err(e) => return Err(e.into()),
        };
        self.inner
            .metrics
            .journal_write_seconds
            .observe(started_at.elapsed().as_secs_f64());
        match outcome {
            StartOutcome::Existing(existing) => repeat(existing, request.request_hash.as_deref()),
            StartOutcome::Created => {
                self.inner.metrics.sagas_started.inc();
                tracing::info!(saga_id = %id, definition = %state.definition.name, "saga started");
                let view = request.want_view.then(|| SagaView::from_state(&state));
                if let Some(lease) = lease {
                    self.launch(state, decision.sends, Some(permit), lease, None);
                }
                Ok(Started {
                    id,
                    created: true,
                    view,
                })
            }
        }
    }

    /// Hands a durable saga to its task, which makes `sends` and drives it from there: on the
    /// event loop `on`, or on this one.
    pub(super) fn launch(
        &self,
        state: SagaState,
        sends: Vec<sagaflow_core::Send>,
        permit: Option<OwnedSemaphorePermit>,
        lease: Arc<Lease>,
        on: Option<tokio::runtime::Handle>,
    ) {
        if state.status.is_terminal() {
            record_finished(&self.inner.metrics, state.status);
            return;
        }
        let (tx, rx) = mpsc::channel(actor::MAILBOX_MAX);
        let (status_tx, status_rx) = watch::channel((state.status, None));
        gauge(&self.inner.metrics, state.status, 1);
        self.inner.live.lock().insert(
            state.id.clone(),
            LiveSaga {
                tx: tx.clone(),
                status: status_rx,
            },
        );
        actor::spawn(
            Arc::clone(&self.inner),
            lease,
            state,
            sends,
            tx,
            rx,
            status_tx,
            permit,
            on,
        );
    }

    /// A saga as the journal has it.
    pub async fn get(&self, id: &str) -> Result<SagaView, EngineError> {
        let (state, _) = self.load(id).await?;
        Ok(SagaView::from_state(&state))
    }

    /// A saga's journal and its step names.
    pub async fn history(&self, id: &str) -> Result<(Vec<String>, Vec<Event>), EngineError> {
        let loaded = self
            .inner
            .store
            .get_saga(id)
            .await?
            .ok_or_else(|| EngineError::SagaNotFound(id.to_owned()))?;
        let definition = self.definition_of(&loaded.record).await?;
        let names = definition.steps.iter().map(|s| s.name.clone()).collect();
        Ok((names, loaded.events))
    }

    async fn definition_of(&self, record: &SagaRecord) -> Result<Arc<Definition>, EngineError> {
        self.definition(&record.definition, Some(record.version))
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!(
                    "saga {} names definition {} v{}, which is not stored",
                    record.id, record.definition, record.version
                ))
            })
    }

    pub(super) async fn load(&self, id: &str) -> Result<(SagaState, SagaRecord), EngineError> {
        let loaded = self
            .inner
            .store
            .get_saga(id)
            .await?
            .ok_or_else(|| EngineError::SagaNotFound(id.to_owned()))?;
        let state = self.replay(&loaded).await?;
        Ok((state, loaded.record))
    }

    pub(super) async fn replay(&self, loaded: &LoadedSaga) -> Result<SagaState, EngineError> {
        let definition = self.definition_of(&loaded.record).await?;
        SagaState::replay(loaded.record.id.clone(), definition, &loaded.events).map_err(|e| {
            EngineError::Internal(format!("saga {} does not replay: {e}", loaded.record.id))
        })
    }

    /// Waits until the saga is terminal or `timeout` passes. Returns its final view when this
    /// process drove it to the end while waiting; `None` otherwise (read it then).
    ///
    /// With replicas, a saga driven elsewhere (or that moves elsewhere while waiting) is read
    /// again every few milliseconds until it ends or the time is up.
    pub async fn wait_terminal(&self, id: &str, timeout: Duration) -> Option<Bytes> {
        let deadline = tokio::time::Instant::now() + timeout;
        let receiver = self.inner.live.lock().get(id).map(|l| l.status.clone());
        // A shutdown ends the wait at once: long polls must not hold up a drain.
        let mut draining = self.inner.draining.subscribe();
        if let Some(mut receiver) = receiver {
            let ended = async {
                tokio::select! {
                    progress = receiver.wait_for(|p| p.0.is_terminal()) => {
                        // An error: its task stopped before the end (shard moved, or drain).
                        progress.ok().and_then(|p| p.1.clone())
                    }
                    _ = draining.wait_for(|d| *d) => None,
                }
            };
            match tokio::time::timeout_at(deadline, ended).await {
                Ok(Some(view)) => return Some(view),
                Ok(None) if self.inner.is_clustered() && !*self.inner.draining.borrow() => {}
                _ => return None,
            }
        } else if !self.inner.is_clustered() {
            return None;
        }
        let polled = async {
            loop {
                if let Ok((state, _)) = self.load(id).await
                    && state.status.is_terminal()
                {
                    return Some(Bytes::from(SagaView::json_of(&state)));
                }
                tokio::time::sleep(REMOTE_WAIT_POLL).await;
            }
        };
        tokio::select! {
            view = tokio::time::timeout_at(deadline, polled) => view.ok().flatten(),
            _ = draining.wait_for(|d| *d) => None,
        }
    }

    /// Cancels a saga: no new step, compensate what completed.
    pub async fn cancel(&self, id: &str) -> Result<SagaView, EngineError> {
        let sender = self.inner.live.lock().get(id).map(|l| l.tx.clone());
        if let Some(sender) = sender {
            let (reply, answer) = oneshot::channel();
            if sender.send(Msg::Cancel { reply }).await.is_ok() {
                match answer.await {
                    Ok(Ok(())) => return self.get(id).await,
                    Ok(Err(rejection)) => return Err(EngineError::Conflict(rejection.to_string())),
                    Err(_) => {}
                }
            }
        }
        let (state, record) = self.load(id).await?;
        if state.status.is_terminal() {
            return Err(EngineError::Conflict(
                Rejection::CancelTerminal(state.status.as_str()).to_string(),
            ));
        }
        if let Some(leases) = self.inner.store.leases() {
            // Driven by another replica (or not yet resumed here): its owner cancels it.
            leases
                .post(record.shard, id, InboxKind::Cancel, now_ms())
                .await?;
            return Ok(SagaView::from_state(&state));
        }
        Err(EngineError::ShuttingDown)
    }

    /// Resumes the compensations of a failed saga with fresh attempts.
    pub async fn retry(&self, id: &str) -> Result<SagaView, EngineError> {
        let _one_at_a_time = self.inner.resume_lock.lock().await;
        if *self.inner.draining.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let (state, record) = self.load(id).await?;
        let now = now_ms();
        let decision = decide(&state, Command::Retry, context(now))
            .map_err(|e| EngineError::Conflict(e.to_string()))?;
        let Some(lease) = self.inner.lease_of(record.shard) else {
            // Another replica holds the shard: its owner resumes the saga.
            if let Some(leases) = self.inner.store.leases() {
                leases.post(record.shard, id, InboxKind::Retry, now).await?;
            }
            return Ok(SagaView::from_state(&state));
        };
        let permit = Arc::clone(&self.inner.active)
            .try_acquire_owned()
            .map_err(|_| EngineError::Overloaded(self.inner.limits.sagas_active_max))?;
        let state = self.commit(state, &decision, lease.fence).await?;
        let view = SagaView::from_state(&state);
        self.launch(state, decision.sends, Some(permit), lease, None);
        Ok(view)
    }

    /// Journals a decision and applies it.
    pub(super) async fn commit(
        &self,
        mut state: SagaState,
        decision: &Decision,
        fence: Option<Fence>,
    ) -> Result<SagaState, EngineError> {
        if decision.events.is_empty() {
            return Ok(state);
        }
        for event in &decision.events {
            state.apply(event);
        }
        self.inner
            .store
            .append(AppendBatch {
                saga_id: state.id.clone(),
                events: decision.events.clone(),
                status: state.status,
                updated_at_ms: state.updated_at_ms,
                fence,
            })
            .await?;
        Ok(state)
    }

    /// Resumes every unfinished saga of the journal: in-flight attempts are sent again, due
    /// retries and timeouts fire, the rest are re-armed. Then the engine is ready.
    ///
    /// With replicas, this joins the cluster instead: the lease keeper takes this replica's
    /// share of the shards and resumes their sagas, and the engine is ready once it joined.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        if self.inner.is_clustered() {
            return Ok(self.join_cluster().await);
        }
        let unfinished = self.inner.store.load_unfinished().await?;
        let standing = Arc::clone(&self.inner.standing);
        let count = self
            .resume_all(unfinished, |_| Some(Arc::clone(&standing)))
            .await?;
        self.inner.ready.store(true, Ordering::Release);
        if count > 0 {
            tracing::info!(sagas = count, "recovered unfinished sagas");
        }
        Ok(count)
    }

    /// Resumes loaded sagas under the lease `lease_of` gives for their shard (skipping those
    /// it gives none for, and those already driven here); answers how many were resumed.
    pub(super) async fn resume_all(
        &self,
        loaded: Vec<LoadedSaga>,
        lease_of: impl Fn(u32) -> Option<Arc<Lease>>,
    ) -> Result<usize, EngineError> {
        let _one_at_a_time = self.inner.resume_lock.lock().await;
        let todo: Vec<(LoadedSaga, Arc<Lease>)> = {
            let live = self.inner.live.lock();
            loaded
                .into_iter()
                .filter(|l| !live.contains_key(&l.record.id) && !l.record.status.is_terminal())
                .filter_map(|l| lease_of(l.record.shard).map(|lease| (l, lease)))
                .collect()
        };
        let mut count = 0;
        // Each saga's re-send events are journaled before its calls leave; the writes go out
        // together so that group commit makes few durable writes of them, not one per saga.
        let mut resumed = futures::stream::iter(todo)
            .map(|(loaded, lease)| async move {
                let state = match self.replay(&loaded).await {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::error!(saga_id = %loaded.record.id, error = %e, "cannot recover saga");
                        return Ok(None);
                    }
                };
                let decision = decide(&state, Command::Recover, context(now_ms()))
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                let id = state.id.clone();
                let shard = loaded.record.shard;
                match self.commit(state, &decision, lease.fence).await {
                    Ok(state) => Ok(Some((state, decision.sends, lease))),
                    // With replicas, one saga's failed write must not stop the others.
                    Err(EngineError::Store(sagaflow_store::Error::Fenced { .. })) => {
                        self.inner.metrics.fenced_writes.inc();
                        lease.revoke();
                        Ok(None)
                    }
                    Err(e) if self.inner.is_clustered() => {
                        tracing::warn!(saga_id = %id, error = %e, "resuming a saga failed; trying again later");
                        self.inner.stalled.lock().insert(id, shard);
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(RECOVERY_CONCURRENCY_MAX);
        while let Some(result) = resumed.next().await {
            if let Some((state, sends, lease)) = result? {
                // Recovered sagas run even above the limit: they were accepted already.
                let permit = Arc::clone(&self.inner.active).try_acquire_owned().ok();
                let on = self.inner.next_loop();
                self.launch(state, sends, permit, lease, on);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Purges finished sagas older than `retention`, in small batches so that the journal's
    /// writer never holds the hot path up for long, until the engine drains.
    pub async fn run_retention(&self, retention: Duration) {
        let mut draining = self.inner.draining.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                _ = draining.wait_for(|d| *d) => return,
            }
            let before_ms = now_ms().saturating_sub(retention.as_millis() as u64);
            loop {
                match self
                    .inner
                    .store
                    .purge_finished(before_ms, RETENTION_BATCH_MAX)
                    .await
                {
                    Ok(purged) => {
                        self.inner.metrics.sagas_purged.inc_by(purged);
                        if purged < RETENTION_BATCH_MAX as u64 || *self.inner.draining.borrow() {
                            break;
                        }
                        // Let the hot path's writes through between batches.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purging finished sagas failed; will try again");
                        break;
                    }
                }
            }
        }
    }

    /// Stops taking new sagas and sending new calls; ends long polls. `shutdown` finishes the job.
    pub fn begin_drain(&self) {
        self.inner.draining.send_replace(true);
    }

    /// Stops taking new work, waits up to `grace` for in-flight calls to answer and be
    /// journaled, then flushes and closes the journal. What is still in flight then is sent
    /// again after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.begin_drain();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.inner.live_changed.notified();
            let remaining = self.inner.live.lock().len();
            if remaining == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    sagas = remaining,
                    "grace period over; their in-flight calls will be sent again on restart"
                );
                break;
            }
        }
        if self.inner.is_clustered() {
            self.leave_cluster().await;
        }
        if let Err(e) = self.inner.store.close().await {
            tracing::error!(error = %e, "closing the journal failed");
        }
    }
}

fn repeat(existing: SagaRecord, request_hash: Option<&str>) -> Result<Started, EngineError> {
    if existing.request_hash.is_some() && existing.request_hash.as_deref() == request_hash {
        Ok(Started {
            id: existing.id,
            created: false,
            view: None,
        })
    } else {
        Err(EngineError::IdempotencyMismatch(existing.id))
    }
}

pub(super) fn context(now_ms: u64) -> Context {
    Context {
        now_ms,
        random: rand::random(),
    }
}

fn trace_id() -> String {
    format!("{:032x}", rand::random::<u128>().max(1))
}

pub(super) fn gauge(metrics: &Metrics, status: SagaStatus, delta: i64) {
    if !status.is_terminal() {
        metrics
            .sagas_live
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc_by(delta);
    }
}

pub(super) fn record_finished(metrics: &Metrics, status: SagaStatus) {
    metrics
        .sagas_finished
        .get_or_create(&StatusLabel {
            status: status.as_str(),
        })
        .inc();
}
