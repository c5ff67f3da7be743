//! One task per live saga: it owns the saga's state, decides, journals (write-ahead), then
//! makes the calls. The calls in flight are futures the task polls itself (no task per call);
//! timers fire in it, and cancels reach it through its mailbox.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tracing::Instrument;

use sagaflow_core::{
    Command, Failure, Payload, Phase, Rejection, SagaState, Send, decide_and_apply,
};
use sagaflow_store::AppendBatch;

use super::handle::{Inner, Progress, context, gauge, record_finished};
use super::lease::Lease;
use crate::clock::now_ms;
use sagaflow_api::SagaView;

/// Messages one saga's mailbox holds at most; senders wait when it is full.
pub(super) const MAILBOX_MAX: usize = 64;

/// Attempts at journaling a decision before the saga's task gives up (the saga is then
/// resumed from the journal at the next start).
const JOURNAL_TRIES_MAX: u32 = 5;

pub(super) enum Msg {
    Cancel {
        reply: oneshot::Sender<Result<(), Rejection>>,
    },
}

/// A participant's answer to one attempt.
struct Answered {
    step: usize,
    phase: Phase,
    attempt: u32,
    outcome: Result<Payload, Failure>,
}

type Call = Pin<Box<dyn Future<Output = Answered> + std::marker::Send>>;

struct Actor {
    inner: Arc<Inner>,
    /// The lease of the saga's shard this task drives it under: its fence goes with every
    /// write, and the task stops when it is revoked.
    lease: Arc<Lease>,
    state: SagaState,
    tx: mpsc::Sender<Msg>,
    status_tx: watch::Sender<Progress>,
    /// Calls sent whose answers have not come back.
    calls: FuturesUnordered<Call>,
    /// The status the `sagas_live` gauge counts this saga under.
    counted: sagaflow_core::SagaStatus,
    /// The journal refused a write: stop driving this saga.
    broken: bool,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    inner: Arc<Inner>,
    lease: Arc<Lease>,
    state: SagaState,
    sends: Vec<Send>,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    status_tx: watch::Sender<Progress>,
    permit: Option<OwnedSemaphorePermit>,
    on: Option<tokio::runtime::Handle>,
) {
    let span = tracing::info_span!("saga", saga_id = %state.id);
    let actor = Actor {
        inner,
        lease,
        counted: state.status,
        state,
        tx,
        status_tx,
        calls: FuturesUnordered::new(),
        broken: false,
    };
    let task = async move {
        actor.run(sends, rx).await;
        drop(permit);
    }
    .instrument(span);
    // On the loop it was given (a resumed saga), or where it was started.
    on.unwrap_or_else(tokio::runtime::Handle::current)
        .spawn(task);
}

impl Actor {
    async fn run(mut self, sends: Vec<Send>, mut rx: mpsc::Receiver<Msg>) {
        let mut draining = self.inner.draining.subscribe();
        let lease = Arc::clone(&self.lease);
        self.dispatch(sends);
        loop {
            if self.state.status.is_terminal() || self.broken || lease.is_revoked() {
                break;
            }
            let is_draining = *draining.borrow_and_update();
            if is_draining && self.calls.is_empty() {
                break;
            }
            let wake = if is_draining {
                None
            } else {
                self.state.next_wakeup_ms()
            };
            let sleep = async {
                match wake {
                    Some(at) => {
                        let delay = at.saturating_sub(now_ms());
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                Some(Answered { step, phase, attempt, outcome }) = self.calls.next(), if !self.calls.is_empty() => {
                    let _ = self.handle(Command::Answer { step, phase, attempt, outcome }).await;
                }
                message = rx.recv() => match message {
                    Some(Msg::Cancel { reply }) => {
                        let result = self.handle(Command::Cancel).await;
                        let _ = reply.send(result);
                    }
                    None => break,
                },
                () = sleep => {
                    let _ = self.handle(Command::Wake).await;
                }
                _ = draining.changed(), if !is_draining => {}
                // The shard moved to another replica, or its lease lapsed: stop at once;
                // the new owner resumes the saga from the journal.
                () = lease.revoked() => break,
            }
        }
        self.finish();
    }

    /// Decides, applies, journals, then sends. Nothing is sent before its event is durable.
    async fn handle(&mut self, command: Command) -> Result<(), Rejection> {
        // Applied before the write, without a copy of the state: if the write does not land,
        // this task stops and drops the state; the saga resumes from the journal.
        let decision = decide_and_apply(&mut self.state, command, context(now_ms()))?;
        if !decision.events.is_empty() {
            let batch = AppendBatch {
                saga_id: self.state.id.clone(),
                events: decision.events,
                status: self.state.status,
                updated_at_ms: self.state.updated_at_ms,
                fence: self.lease.fence,
            };
            if !self.journal(batch).await {
                self.broken = true;
                return Ok(());
            }
            let before = self.counted;
            if before != self.state.status {
                gauge(&self.inner.metrics, before, -1);
                gauge(&self.inner.metrics, self.state.status, 1);
                self.counted = self.state.status;
                if self.state.status.is_terminal() {
                    record_finished(&self.inner.metrics, self.state.status);
                    tracing::info!(status = self.state.status.as_str(), "saga finished");
                }
                // A terminal saga's view is published, so waiters answer without a read.
                let view = self
                    .state
                    .status
                    .is_terminal()
                    .then(|| Bytes::from(SagaView::json_of(&self.state)));
                self.status_tx.send_replace((self.state.status, view));
            }
        }
        self.dispatch(decision.sends);
        Ok(())
    }

    /// Journals one decision, retrying a transient store failure a few times.
    async fn journal(&mut self, batch: AppendBatch) -> bool {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=JOURNAL_TRIES_MAX {
            if self.lease.is_revoked() {
                // The shard went elsewhere (or back to the pool) while retrying.
                return false;
            }
            let started = std::time::Instant::now();
            match self.inner.store.append(batch.clone()).await {
                Ok(()) => {
                    self.inner
                        .metrics
                        .journal_write_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(e @ sagaflow_store::Error::CommitUnknown(_)) => {
                    // Writing again could record the events twice: resume from the journal.
                    tracing::error!(error = %e, "journal commit outcome unknown; the saga resumes from the journal at the next start");
                    return false;
                }
                Err(e @ sagaflow_store::Error::Fenced { .. }) => {
                    // Another replica owns the shard now: this process must not act for it.
                    self.inner.metrics.fenced_writes.inc();
                    tracing::warn!(error = %e, "stale write refused; the shard's new owner drives the saga");
                    self.lease.revoke();
                    return false;
                }
                Err(sagaflow_store::Error::Closed) => {
                    tracing::info!(
                        "journal closed; the saga resumes from the journal at the next start"
                    );
                    return false;
                }
                Err(e) if attempt < JOURNAL_TRIES_MAX => {
                    tracing::warn!(error = %e, attempt, "journal write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    tracing::error!(error = %e, "journal write failed; the saga stops here until the next start");
                }
            }
        }
        false
    }

    fn dispatch(&mut self, sends: Vec<Send>) {
        if *self.inner.draining.borrow() {
            // Journaled as in flight: the next start sends them again.
            return;
        }
        if !sends.is_empty() && !self.lease.is_valid() {
            // The lease may have passed to another replica while this one was paused: a call
            // sent now could act for a saga someone else drives. Journaled as in flight, so the
            // shard's owner sends it.
            self.inner.metrics.sends_withheld.inc_by(sends.len() as u64);
            tracing::warn!("lease lapsed; calls withheld for the shard's next owner");
            self.broken = true;
            return;
        }
        for send in sends {
            let spec = self.inner.dispatcher.prepare(&self.state, &send);
            let inner = Arc::clone(&self.inner);
            // Polled by this task, inside its saga span: the answer comes back without a
            // mailbox, and the call's fields go on the lines it logs.
            self.calls.push(Box::pin(async move {
                let outcome = inner.dispatcher.call(&spec).await;
                let (step, phase, attempt) =
                    (spec.step_name.as_str(), send.phase.as_str(), send.attempt);
                match &outcome {
                    Ok(_) => tracing::debug!(step, phase, attempt, "attempt succeeded"),
                    Err(failure) => tracing::info!(
                        step,
                        phase,
                        attempt,
                        kind = super::dispatcher::failure_kind_name(failure.kind),
                        error = %sagaflow_core::state::describe(failure),
                        "attempt failed"
                    ),
                }
                Answered {
                    step: send.step,
                    phase: send.phase,
                    attempt: send.attempt,
                    outcome,
                }
            }));
        }
    }

    fn finish(self) {
        {
            let mut live = self.inner.live.lock();
            // The saga may already run again in a newer task (its shard was taken back).
            if live
                .get(&self.state.id)
                .is_some_and(|l| l.tx.same_channel(&self.tx))
            {
                live.remove(&self.state.id);
            }
        }
        // `counted` is the status the journal last recorded (`state` may hold a decision
        // whose write did not land).
        if !self.counted.is_terminal() {
            gauge(&self.inner.metrics, self.counted, -1);
            // A write failed for good, or the lease went while this task was busy (a resume of
            // the shard, here or elsewhere, skipped the saga because this task still ran): the
            // lease keeper resumes it from the journal if this replica holds its shard. Only
            // after leaving `live`, so that the resume does not skip it again.
            if (self.broken || self.lease.is_revoked()) && self.lease.fence.is_some() {
                self.inner
                    .stalled
                    .lock()
                    .insert(self.state.id.clone(), self.lease.shard());
            }
        }
        self.inner.live_changed.notify_waiters();
    }
}
