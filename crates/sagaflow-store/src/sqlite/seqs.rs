//! Each live saga's `seq` (the integer key of its row), kept beside the writer's connection so
//! that an append need not look it up by the saga's text id: a `SELECT` per append, ~4 % of the
//! coordinator's CPU at `-c 64` (BENCHMARKS.md).
//!
//! A cache, never the truth: a saga it lacks is looked up in the table. What it holds must be
//! committed, because a rolled-back insert hands its `seq` out again: entries are
//! staged while a transaction runs and kept only once it commits.

use std::collections::HashMap;

/// Sagas whose `seq` is kept at most. Past it, new sagas' appends look theirs up; entries leave
/// when their saga reaches a terminal status, so under a steady load the cache holds the sagas
/// in flight (bounded by the engine's own limit on live sagas, far below this).
pub(crate) const SEQS_MAX: usize = 256 * 1024;

#[derive(Default)]
pub(crate) struct Seqs {
    committed: HashMap<String, i64>,
    /// Sagas started by the transaction being written, in the order they were started.
    staged: Vec<(String, i64)>,
}

impl Seqs {
    /// The `seq` of a saga started by an earlier, committed transaction, if kept.
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        self.committed.get(id).copied()
    }

    /// Records a saga started by the running transaction.
    pub(crate) fn stage(&mut self, id: &str, seq: i64) {
        self.staged.push((id.to_owned(), seq));
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
        for (id, seq) in self.staged.drain(..) {
            if self.committed.len() < SEQS_MAX {
                self.committed.insert(id, seq);
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

    #[test]
    fn a_start_is_kept_only_once_its_transaction_commits() {
        let mut seqs = Seqs::default();
        seqs.stage("a", 1);
        assert_eq!(seqs.get("a"), None, "staged, not committed");
        seqs.roll_back();
        seqs.commit();
        assert_eq!(seqs.get("a"), None, "a rolled-back start is never kept");
        seqs.stage("a", 1);
        seqs.commit();
        assert_eq!(seqs.get("a"), Some(1));
    }

    #[test]
    fn a_savepoint_rolled_back_unstages_only_its_own_starts() {
        let mut seqs = Seqs::default();
        seqs.stage("a", 1);
        let mark = seqs.staged_len();
        seqs.stage("b", 2);
        seqs.unstage_to(mark);
        seqs.commit();
        assert_eq!((seqs.get("a"), seqs.get("b")), (Some(1), None));
    }

    #[test]
    fn past_its_bound_the_cache_keeps_no_more() {
        let mut seqs = Seqs::default();
        for seq in 0..SEQS_MAX as i64 + 10 {
            seqs.stage(&seq.to_string(), seq);
        }
        seqs.commit();
        assert_eq!(seqs.len(), SEQS_MAX);
        seqs.forget("0");
        assert_eq!(seqs.len(), SEQS_MAX - 1);
    }
}
