//! Each live saga's `seq` (the integer key of its row) and the status its row holds, kept beside
//! the writer's connection so that an append need not look the saga up by its text id (a
//! `SELECT` per append, ~4 % of the coordinator's CPU at `-c 64`, BENCHMARKS.md), nor rewrite
//! its row when the status stays (see `write::append`).
//!
//! A cache, never the truth: a saga it lacks is looked up in the table. What it holds must be
//! committed, because a rolled-back insert hands its `seq` out again: entries are
//! staged while a transaction runs and kept only once it commits.

use std::collections::HashMap;

use sagaflow_core::SagaStatus;

/// Sagas whose `seq` is kept at most. Past it, new sagas' appends look theirs up; entries leave
/// when their saga reaches a terminal status, so under a steady load the cache holds the sagas
/// in flight (bounded by the engine's own limit on live sagas, far below this).
pub(crate) const SEQS_MAX: usize = 256 * 1024;

/// A live saga's row: its key, and the status it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kept {
    pub(crate) seq: i64,
    pub(crate) status: SagaStatus,
}

#[derive(Default)]
pub(crate) struct Seqs {
    committed: HashMap<String, Kept>,
    /// Rows the transaction being written started or changed, in the order it wrote them.
    staged: Vec<(String, Kept)>,
}

impl Seqs {
    /// The `seq` of a saga written by an earlier, committed transaction, if kept.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        self.committed.get(id).map(|kept| kept.seq)
    }

    /// A saga's row as the running transaction sees it: its own writes first, then what
    /// earlier transactions committed.
    pub(crate) fn current(&self, id: &str) -> Option<Kept> {
        self.staged
            .iter()
            .rev()
            .find(|(staged, _)| staged == id)
            .map(|(_, kept)| *kept)
            .or_else(|| self.committed.get(id).copied())
    }

    /// Records a row the running transaction started, or whose status it wrote.
    pub(crate) fn stage(&mut self, id: &str, kept: Kept) {
        self.staged.push((id.to_owned(), kept));
    }

    /// How many starts are staged: a savepoint that rolls back truncates to what it saw.
    pub(crate) fn staged_len(&self) -> usize {
        self.staged.len()
    }

    pub(crate) fn unstage_to(&mut self, len: usize) {
        self.staged.truncate(len);
    }

    /// The running transaction committed: keep what it staged, while there is room.
    pub(crate) fn commit(&mut self) {
        for (id, kept) in self.staged.drain(..) {
            if let Some(entry) = self.committed.get_mut(&id) {
                *entry = kept;
            } else if self.committed.len() < SEQS_MAX {
                self.committed.insert(id, kept);
            }
        }
    }

    /// The running transaction rolled back: its `seq`s may be handed out again.
    pub(crate) fn roll_back(&mut self) {
        self.staged.clear();
    }

    /// Forgets a saga (it reached a terminal status, or its row is gone). Safe at any time: a
    /// saga not kept is looked up.
    pub(crate) fn forget(&mut self, id: &str) {
        self.committed.remove(id);
        self.staged.retain(|(staged, _)| staged != id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.committed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(seq: i64) -> Kept {
        Kept {
            seq,
            status: SagaStatus::Running,
        }
    }

    #[test]
    fn a_start_is_kept_only_once_its_transaction_commits() {
        let mut seqs = Seqs::default();
        seqs.stage("a", running(1));
        assert_eq!(seqs.get("a"), None, "staged, not committed");
        seqs.roll_back();
        seqs.commit();
        assert_eq!(seqs.get("a"), None, "a rolled-back start is never kept");
        assert_eq!(seqs.current("a"), None);
        seqs.stage("a", running(1));
        seqs.commit();
        assert_eq!(seqs.get("a"), Some(1));
    }

    #[test]
    fn a_savepoint_rolled_back_unstages_only_its_own_starts() {
        let mut seqs = Seqs::default();
        seqs.stage("a", running(1));
        let mark = seqs.staged_len();
        seqs.stage("b", running(2));
        seqs.unstage_to(mark);
        seqs.commit();
        assert_eq!((seqs.get("a"), seqs.get("b")), (Some(1), None));
    }

    #[test]
    fn past_its_bound_the_cache_keeps_no_more() {
        let mut seqs = Seqs::default();
        for seq in 0..SEQS_MAX as i64 + 10 {
            seqs.stage(&seq.to_string(), running(seq));
        }
        seqs.commit();
        assert_eq!(seqs.len(), SEQS_MAX);
        seqs.forget("0");
        assert_eq!(seqs.len(), SEQS_MAX - 1);
    }

    #[test]
    fn the_running_transaction_sees_its_own_status_writes_and_keeps_them_once_committed() {
        let mut seqs = Seqs::default();
        seqs.stage("a", running(1));
        seqs.commit();
        let compensating = Kept {
            seq: 1,
            status: SagaStatus::Compensating,
        };
        seqs.stage("a", compensating);
        assert_eq!(seqs.current("a"), Some(compensating), "its own write first");
        seqs.roll_back();
        assert_eq!(
            seqs.current("a"),
            Some(running(1)),
            "a rolled-back write is gone"
        );
        seqs.stage("a", compensating);
        seqs.commit();
        assert_eq!(seqs.current("a"), Some(compensating));
        assert_eq!(seqs.len(), 1, "a saga's entry is replaced, not added");
    }
}
