//! The engine's handle: starts, reads, cancels and retries sagas; recovers them after a restart;
//! drains on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use sagaflow_api::SagaView;
use sagaflow_core::{
    Command, Context, Decision, Definition, DefinitionLimits, Event, Payload, Rejection, SagaState,
    SagaStatus, decide,
};
use sagaflow_store::{AppendBatch, LoadedSaga, NewSaga, SagaRecord, StartOutcome, Store};

use super::actor::{self, Msg};
use super::definitions::Definitions;
use super::dispatcher::Dispatcher;
use crate::clock::now_ms;
use crate::config::Limits;
use crate::metrics::{Metrics, StatusLabel};

/// Sagas whose recovery writes are in flight at once after a restart.
const RECOVERY_CONCURRENCY_MAX: usize = 512;

/// How often retention looks for finished sagas to purge.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// Sagas one purge deletes at most (one journal write).
const RETENTION_BATCH_MAX: usize = 500;

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
    /// A digest of the request, to tell a repeat from a reuse of the key.
    pub request_hash: String,
}

/// The answer to a start.
pub struct Started {
    pub id: String,
    /// `false` when an idempotent repeat returned the saga already started.
    pub created: bool,
    /// The saga as it was accepted (for a new saga; a repeat must read it).
    pub view: Option<SagaView>,
}

/// A live saga's status, and its final view once it is terminal.
pub(super) type Progress = (SagaStatus, Option<Arc<SagaView>>);

/// A live saga, as the engine reaches it.
pub(super) struct LiveSaga {
    pub tx: mpsc::Sender<Msg>,
    pub status: watch::Receiver<Progress>,
}

pub(super) struct Inner {
    pub store: Arc<dyn Store>,
    pub definitions: Definitions,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub live: Mutex<HashMap<String, LiveSaga>>,
    pub live_changed: Notify,
    pub draining: watch::Sender<bool>,
    active: Arc<Semaphore>,
    retry_lock: tokio::sync::Mutex<()>,
    ready: AtomicBool,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, limits: Limits, metrics: Arc<Metrics>) -> Engine {
        let dispatcher = Dispatcher::new(
            limits.calls_in_flight_max,
            limits.output_bytes_max,
            Arc::clone(&metrics),
        );
        let (draining, _) = watch::channel(false);
        Engine {
            inner: Arc::new(Inner {
                store,
                definitions: Definitions::default(),
                dispatcher,
                metrics,
                active: Arc::new(Semaphore::new(limits.sagas_active_max.max(1))),
                limits,
                live: Mutex::new(HashMap::new()),
                live_changed: Notify::new(),
                draining,
                retry_lock: tokio::sync::Mutex::new(()),
                ready: AtomicBool::new(false),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
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
            return repeat(existing, &request.request_hash);
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
        let decision = decide(&state, Command::Wake, context(now))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        for event in &decision.events {
            state.apply(event);
        }
        let mut events = Vec::with_capacity(1 + decision.events.len());
        events.push(started);
        events.extend(decision.events);
        let record = SagaRecord {
            id: id.clone(),
            definition: state.definition.name.clone(),
            version: state.definition.version,
            status: state.status,
            created_at_ms: now,
            updated_at_ms: state.updated_at_ms,
            idempotency_key: request.idempotency_key.clone(),
            request_hash: Some(request.request_hash.clone()),
            shard: 0,
        };
        let started_at = std::time::Instant::now();
        let outcome = self
            .inner
            .store
            .start_saga(NewSaga {
                record,
                events,
                fence: None,
                handoff: false,
            })
            .await?;
        self.inner
            .metrics
            .journal_write_seconds
            .observe(started_at.elapsed().as_secs_f64());
        match outcome {
            StartOutcome::Existing(existing) => repeat(existing, &request.request_hash),
            StartOutcome::Created => {
                self.inner.metrics.sagas_started.inc();
                tracing::info!(saga_id = %id, definition = %state.definition.name, "saga started");
                let view = SagaView::from_state(&state);
                self.launch(state, decision.sends, Some(permit));
                Ok(Started {
                    id,
                    created: true,
                    view: Some(view),
                })
            }
        }
    }

    /// Hands a durable saga to its task, which makes `sends` and drives it from there.
    fn launch(
        &self,
        state: SagaState,
        sends: Vec<sagaflow_core::Send>,
        permit: Option<OwnedSemaphorePermit>,
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
            state,
            sends,
            tx,
            rx,
            status_tx,
            permit,
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

    async fn load(&self, id: &str) -> Result<(SagaState, SagaRecord), EngineError> {
        let loaded = self
            .inner
            .store
            .get_saga(id)
            .await?
            .ok_or_else(|| EngineError::SagaNotFound(id.to_owned()))?;
        let state = self.replay(&loaded).await?;
        Ok((state, loaded.record))
    }

    async fn replay(&self, loaded: &LoadedSaga) -> Result<SagaState, EngineError> {
        let definition = self.definition_of(&loaded.record).await?;
        SagaState::replay(loaded.record.id.clone(), definition, &loaded.events).map_err(|e| {
            EngineError::Internal(format!("saga {} does not replay: {e}", loaded.record.id))
        })
    }

    /// Waits until the saga is terminal or `timeout` passes. Returns its final view when this
    /// process drove it to the end while waiting; `None` otherwise (read it then).
    pub async fn wait_terminal(&self, id: &str, timeout: Duration) -> Option<Arc<SagaView>> {
        let mut receiver = self.inner.live.lock().get(id).map(|l| l.status.clone())?;
        // A shutdown ends the wait at once: long polls must not hold up a drain.
        let mut draining = self.inner.draining.subscribe();
        let ended = async {
            tokio::select! {
                progress = receiver.wait_for(|p| p.0.is_terminal()) => {
                    progress.ok().and_then(|p| p.1.clone())
                }
                _ = draining.wait_for(|d| *d) => None,
            }
        };
        tokio::time::timeout(timeout, ended).await.ok().flatten()
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
        let (state, _) = self.load(id).await?;
        if state.status.is_terminal() {
            return Err(EngineError::Conflict(
                Rejection::CancelTerminal(state.status.as_str()).to_string(),
            ));
        }
        Err(EngineError::ShuttingDown)
    }

    /// Resumes the compensations of a failed saga with fresh attempts.
    pub async fn retry(&self, id: &str) -> Result<SagaView, EngineError> {
        let _one_at_a_time = self.inner.retry_lock.lock().await;
        if *self.inner.draining.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let (state, _) = self.load(id).await?;
        let now = now_ms();
        let decision = decide(&state, Command::Retry, context(now))
            .map_err(|e| EngineError::Conflict(e.to_string()))?;
        let permit = Arc::clone(&self.inner.active)
            .try_acquire_owned()
            .map_err(|_| EngineError::Overloaded(self.inner.limits.sagas_active_max))?;
        let state = self.commit(state, &decision).await?;
        let view = SagaView::from_state(&state);
        self.launch(state, decision.sends, Some(permit));
        Ok(view)
    }

    /// Journals a decision and applies it.
    async fn commit(
        &self,
        mut state: SagaState,
        decision: &Decision,
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
                fence: None,
            })
            .await?;
        Ok(state)
    }

    /// Resumes every unfinished saga of the journal: in-flight attempts are sent again, due
    /// retries and timeouts fire, the rest are re-armed. Then the engine is ready.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let unfinished = self.inner.store.load_unfinished().await?;
        let count = unfinished.len();
        // Each saga's re-send events are journaled before its calls leave; the writes go out
        // together so that group commit makes few durable writes of them, not one per saga.
        let mut resumed = futures::stream::iter(unfinished)
            .map(|loaded| async move {
                let state = match self.replay(&loaded).await {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::error!(saga_id = %loaded.record.id, error = %e, "cannot recover saga");
                        return Ok(None);
                    }
                };
                let decision = decide(&state, Command::Recover, context(now_ms()))
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                let state = self.commit(state, &decision).await?;
                Ok::<_, EngineError>(Some((state, decision.sends)))
            })
            .buffer_unordered(RECOVERY_CONCURRENCY_MAX);
        while let Some(result) = resumed.next().await {
            if let Some((state, sends)) = result? {
                // Recovered sagas run even above the limit: they were accepted already.
                let permit = Arc::clone(&self.inner.active).try_acquire_owned().ok();
                self.launch(state, sends, permit);
            }
        }
        self.inner.ready.store(true, Ordering::Release);
        if count > 0 {
            tracing::info!(sagas = count, "recovered unfinished sagas");
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
        if let Err(e) = self.inner.store.close().await {
            tracing::error!(error = %e, "closing the journal failed");
        }
    }
}

fn repeat(existing: SagaRecord, request_hash: &str) -> Result<Started, EngineError> {
    if existing.request_hash.as_deref() == Some(request_hash) {
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
