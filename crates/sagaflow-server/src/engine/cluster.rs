//! Replicas sharing a store: the lease keeper (join, renew, take over, rebalance, hand back)
//! and the shard inboxes (starts made elsewhere, cancels and retries of sagas owned here).
//!
//! Every round (a fifth of the lease time) the keeper heartbeats, renews the leases it holds
//! (those it cannot renew at their epoch were taken over: their sagas stop at once), then moves
//! toward its fair share, `ceil(shards / live replicas)`: it takes free or expired shards and
//! resumes their unfinished sagas from the journal, or gives one shard back per round when it
//! holds more than its share, so a replica that joins receives shards gradually, without a
//! stop. On shutdown every lease is given back at once.
//!
//! Safety does not rest on timing: every journal write carries its lease's epoch and the
//! database refuses stale ones. Timing only keeps a paused replica from *sending*: a call
//! leaves only while the lease is valid by this process's monotonic clock, counted from before
//! the renewal was sent and ending a safety margin before the database's expiry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sagaflow_core::{Command, decide};
use sagaflow_store::{Fence, InboxItem, InboxKind, Leases};
use tokio::sync::oneshot;

use super::actor::Msg;
use super::handle::{Engine, EngineError, context};
use super::lease::{Lease, mono_ms, safety_margin};
use crate::clock::now_ms;

/// How often the shard inboxes are read.
const INBOX_INTERVAL: Duration = Duration::from_millis(100);
/// Inbox messages handled per read at most.
const INBOX_BATCH_MAX: usize = 256;
/// Stalled sagas resumed per keeper round at most.
const STALLED_PER_ROUND_MAX: usize = 1024;

/// `host-pid-random`: readable in the lease table, unique across restarts.
pub(crate) fn random_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Engine {
    fn leases(&self) -> Option<&dyn Leases> {
        self.inner.store.leases()
    }

    /// Joins the cluster (one keeper round, which takes this replica's first shards and
    /// resumes their sagas), then keeps the leases and reads the inboxes in the background.
    /// Answers how many sagas the first round resumed.
    pub(super) async fn join_cluster(&self) -> usize {
        let resumed = match self.lease_round().await {
            Ok(resumed) => resumed,
            Err(e) => {
                tracing::warn!(error = %e, "joining the cluster failed; trying again");
                0
            }
        };
        let keeper = self.clone();
        tokio::spawn(async move { keeper.keep_leases().await });
        let reader = self.clone();
        tokio::spawn(async move { reader.read_inboxes().await });
        resumed
    }

    async fn keep_leases(self) {
        let round = self.inner.cluster.lease_ttl / 5;
        let mut draining = self.inner.draining.subscribe();
        loop {
            let next = tokio::time::Instant::now() + round;
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = draining.wait_for(|d| *d) => return,
            }
            if let Err(e) = self.lease_round().await {
                tracing::warn!(error = %e, "lease round failed; leases are used until they lapse");
            }
        }
    }

    /// One round of the keeper; answers how many sagas it resumed.
    async fn lease_round(&self) -> Result<usize, EngineError> {
        let Some(leases) = self.leases() else {
            return Ok(0);
        };
        let me = self.inner.replica_id.as_str();
        let ttl = self.inner.cluster.lease_ttl;
        let usable_ms = (ttl - safety_margin(ttl)).as_millis() as u64;
        if self.inner.shards.lock().count == 0 {
            let wanted = self.inner.cluster.shards;
            let count = leases.init_cluster(wanted).await?;
            if count != wanted {
                tracing::warn!(
                    configured = wanted,
                    cluster = count,
                    "the cluster was created with another shard count; using the cluster's"
                );
            }
            self.inner.shards.lock().count = count;
            tracing::info!(replica = me, shards = count, "joined the cluster");
        }
        let replicas = leases.heartbeat(me, ttl).await?;

        // Renew what is held; what cannot be renewed at its epoch was taken over.
        let held: Vec<Fence> = {
            let shards = self.inner.shards.lock();
            shards.held.values().filter_map(|l| l.fence).collect()
        };
        let sent_at = mono_ms();
        let renewed = leases.renew(me, &held, ttl).await?;
        {
            let mut shards = self.inner.shards.lock();
            let mut lost = Vec::new();
            for (shard, lease) in &shards.held {
                if lease.fence.is_some_and(|f| renewed.contains(&f)) {
                    lease.extend(sent_at + usable_ms);
                } else {
                    lost.push(*shard);
                }
            }
            for shard in lost {
                if let Some(lease) = shards.held.remove(&shard) {
                    lease.revoke();
                    self.inner.metrics.shards_lost.inc();
                    tracing::warn!(shard, "shard lease lost; its sagas stop here");
                }
            }
        }

        let (count, have) = {
            let shards = self.inner.shards.lock();
            (shards.count, shards.held.len() as u32)
        };
        let share = count.div_ceil(replicas.max(1));
        let mut resumed = 0;
        if have < share && !*self.inner.draining.borrow() {
            resumed = self.take_shards(leases, share - have).await?;
        } else if have > share {
            self.give_back_one(leases).await?;
        }
        resumed += self.resume_stalled().await;
        self.inner
            .metrics
            .shards_held
            .set(self.inner.shards.lock().held.len() as i64);
        self.inner.ready.store(true, Ordering::Release);
        Ok(resumed)
    }

    async fn take_shards(&self, leases: &dyn Leases, wanted: u32) -> Result<usize, EngineError> {
        let me = self.inner.replica_id.as_str();
        let ttl = self.inner.cluster.lease_ttl;
        let usable_ms = (ttl - safety_margin(ttl)).as_millis() as u64;
        let sent_at = mono_ms();
        let taken = leases.acquire(me, wanted, ttl).await?;
        if taken.is_empty() {
            return Ok(0);
        }
        let fresh: Vec<Arc<Lease>> = taken
            .iter()
            .map(|fence| Arc::new(Lease::granted(*fence, sent_at + usable_ms)))
            .collect();
        {
            let mut shards = self.inner.shards.lock();
            for lease in &fresh {
                if let Some(old) = shards.held.insert(lease.shard(), Arc::clone(lease)) {
                    old.revoke();
                }
            }
        }
        self.inner
            .metrics
            .shards_acquired
            .inc_by(fresh.len() as u64);
        let numbers: Vec<u32> = fresh.iter().map(|l| l.shard()).collect();
        tracing::info!(shards = ?numbers, "shard leases taken; resuming their sagas");
        let loaded = match leases.load_unfinished_in(&numbers).await {
            Ok(loaded) => loaded,
            Err(e) => {
                // Holding shards whose sagas nobody drives would stall them: give them back.
                self.drop_leases(leases, &fresh).await;
                return Err(e.into());
            }
        };
        let by_shard = |shard: u32| fresh.iter().find(|l| l.shard() == shard).cloned();
        self.resume_all(loaded, by_shard).await
    }

    /// Gives back the shard with the fewest sagas driven here: shards move one per round.
    async fn give_back_one(&self, leases: &dyn Leases) -> Result<(), EngineError> {
        let lease = {
            let shards = self.inner.shards.lock();
            shards.held.values().next_back().cloned()
        };
        if let Some(lease) = lease {
            tracing::info!(shard = lease.shard(), "giving a shard back (rebalancing)");
            self.drop_leases(leases, &[lease]).await;
        }
        Ok(())
    }

    /// Stops the sagas of `dropped` here, then frees the shards at a new epoch.
    async fn drop_leases(&self, leases: &dyn Leases, dropped: &[Arc<Lease>]) {
        let fences: Vec<Fence> = {
            let mut shards = self.inner.shards.lock();
            dropped
                .iter()
                .filter_map(|lease| {
                    lease.revoke();
                    if shards
                        .held
                        .get(&lease.shard())
                        .is_some_and(|held| Arc::ptr_eq(held, lease))
                    {
                        shards.held.remove(&lease.shard());
                    }
                    lease.fence
                })
                .collect()
        };
        match leases.release(&self.inner.replica_id, &fences).await {
            Ok(()) => {
                self.inner
                    .metrics
                    .shards_released
                    .inc_by(fences.len() as u64);
            }
            // They expire on their own then.
            Err(e) => tracing::warn!(error = %e, "giving shards back failed; they will expire"),
        }
    }

    /// Resumes sagas whose task stopped on a failed write (or lost its lease while busy), from
    /// the journal, when their shard is held here. A saga whose shard is held under a lease
    /// that lapsed for now waits for a later round; one whose shard is not held here is left to
    /// the shard's owner, which resumed it when it took the shard.
    async fn resume_stalled(&self) -> usize {
        let ids: Vec<(String, u32)> = {
            let shards = self.inner.shards.lock();
            let mut stalled = self.inner.stalled.lock();
            stalled.retain(|_, shard| shards.held.contains_key(shard));
            let ids: Vec<(String, u32)> = stalled
                .iter()
                .filter(|(_, shard)| shards.held.get(shard).is_some_and(|l| l.is_valid()))
                .take(STALLED_PER_ROUND_MAX)
                .map(|(id, shard)| (id.clone(), *shard))
                .collect();
            for (id, _) in &ids {
                stalled.remove(id);
            }
            ids
        };
        let mut resumed = 0;
        for (id, shard) in ids {
            match self.inner.store.get_saga(&id).await {
                Ok(Some(loaded)) => {
                    let inner = Arc::clone(&self.inner);
                    match self.resume_all(vec![loaded], |s| inner.lease_of(s)).await {
                        Ok(n) => resumed += n,
                        Err(e) => {
                            tracing::warn!(saga_id = %id, error = %e, "resuming a stalled saga failed");
                            self.inner.stalled.lock().insert(id, shard);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(saga_id = %id, error = %e, "cannot read a stalled saga yet");
                    self.inner.stalled.lock().insert(id, shard);
                }
            }
        }
        resumed
    }

    async fn read_inboxes(self) {
        let mut draining = self.inner.draining.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(INBOX_INTERVAL) => {}
                _ = draining.wait_for(|d| *d) => return,
            }
            let Some(leases) = self.leases() else { return };
            let shards: Vec<u32> = {
                let shards = self.inner.shards.lock();
                shards
                    .held
                    .iter()
                    .filter(|(_, l)| l.is_valid())
                    .map(|(s, _)| *s)
                    .collect()
            };
            let items = match leases.inbox(&shards, INBOX_BATCH_MAX).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::debug!(error = %e, "reading the shard inboxes failed");
                    continue;
                }
            };
            let mut done = Vec::with_capacity(items.len());
            for item in items {
                match self.handle_inbox(&item).await {
                    Ok(()) => done.push(item.id),
                    Err(e) => {
                        tracing::warn!(saga_id = %item.saga_id, kind = item.kind.as_str(), error = %e, "inbox message not handled yet")
                    }
                }
            }
            if let Err(e) = leases.ack(&done).await {
                tracing::debug!(error = %e, "acking inbox messages failed; they are handled again");
            }
        }
    }

    async fn handle_inbox(&self, item: &InboxItem) -> Result<(), EngineError> {
        let Some(lease) = self.inner.lease_of(item.shard) else {
            return Err(EngineError::Internal(
                "the shard's lease is not valid here".into(),
            ));
        };
        match item.kind {
            InboxKind::Start | InboxKind::Cancel => {
                let live = self.inner.live.lock().contains_key(&item.saga_id);
                if !live && let Some(loaded) = self.inner.store.get_saga(&item.saga_id).await? {
                    self.resume_all(vec![loaded], |_| Some(Arc::clone(&lease)))
                        .await?;
                }
                if item.kind == InboxKind::Cancel {
                    let sender = self
                        .inner
                        .live
                        .lock()
                        .get(&item.saga_id)
                        .map(|l| l.tx.clone());
                    if let Some(sender) = sender {
                        let (reply, answer) = oneshot::channel();
                        if sender.send(Msg::Cancel { reply }).await.is_ok() {
                            // A saga that ended meanwhile refuses: nothing left to do.
                            let _ = answer.await;
                        }
                    }
                }
            }
            InboxKind::Retry => {
                let _one_at_a_time = self.inner.resume_lock.lock().await;
                if self.inner.live.lock().contains_key(&item.saga_id) {
                    return Ok(());
                }
                let (state, _) = self.load(&item.saga_id).await?;
                let Ok(decision) = decide(&state, Command::Retry, context(now_ms())) else {
                    // Not failed any more (retried already): nothing to do.
                    return Ok(());
                };
                let state = self.commit(state, &decision, lease.fence).await?;
                self.launch(state, decision.sends, None, lease, None);
            }
        }
        Ok(())
    }

    /// Graceful shutdown: stop every saga here, give every shard back at a new epoch, and
    /// leave, so the other replicas take the shards at their next round.
    pub(super) async fn leave_cluster(&self) {
        let Some(leases) = self.leases() else { return };
        let held: Vec<Arc<Lease>> = self.inner.shards.lock().held.values().cloned().collect();
        let count = held.len();
        self.drop_leases(leases, &held).await;
        if let Err(e) = leases.leave(&self.inner.replica_id).await {
            tracing::warn!(error = %e, "leaving the cluster failed; this replica's row expires");
        }
        self.inner.metrics.shards_held.set(0);
        tracing::info!(shards = count, "shards handed back");
    }
}
