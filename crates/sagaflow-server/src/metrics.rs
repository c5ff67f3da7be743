//! Prometheus metrics. Labels have bounded values only: never a saga id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub phase: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the coordinator exports.
pub struct Metrics {
    registry: Registry,
    pub sagas_started: Counter,
    pub sagas_finished: Family<StatusLabel, Counter>,
    pub sagas_live: Family<StatusLabel, Gauge>,
    pub step_attempts: Family<AttemptLabels, Counter>,
    pub step_duration: Family<PhaseLabel, Histogram>,
    pub rejected: Family<ReasonLabel, Counter>,
    pub journal_write_seconds: Histogram,
    pub calls_in_flight: Gauge,
    pub sagas_purged: Counter,
    /// Journal writes the database refused because the lease they carried was stale.
    pub fenced_writes: Counter,
    /// Participant calls not sent because this replica's lease had lapsed.
    pub sends_withheld: Counter,
    pub shards_held: Gauge,
    pub shards_acquired: Counter,
    pub shards_lost: Counter,
    pub shards_released: Counter,
    journal_commits: Counter,
    journal_requests: Counter,
    journal_events: Counter,
    journal_seen: parking_lot::Mutex<sagaflow_store::StoreStats>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sagaflow");
        let sagas_started = Counter::default();
        registry.register(
            "sagas_started",
            "Sagas accepted (201) since this process started",
            sagas_started.clone(),
        );
        let sagas_finished = Family::<StatusLabel, Counter>::default();
        registry.register(
            "sagas_finished",
            "Sagas that reached a terminal status since this process started, by status",
            sagas_finished.clone(),
        );
        let sagas_live = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "sagas",
            "Sagas this process is driving now, by status (running, compensating)",
            sagas_live.clone(),
        );
        let step_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "step_attempts",
            "Participant call attempts by phase and outcome",
            step_attempts.clone(),
        );
        let step_duration = Family::<PhaseLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
        });
        registry.register(
            "step_attempt_duration_seconds",
            "Time from sending an attempt to its answer",
            step_duration.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "requests_rejected",
            "API requests refused for overload or limits, by reason",
            rejected.clone(),
        );
        let journal_write_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "journal_write_duration_seconds",
            "Time for a saga's events to become durable (queueing plus group commit)",
            journal_write_seconds.clone(),
        );
        let calls_in_flight = Gauge::default();
        registry.register(
            "participant_calls_in_flight",
            "Participant calls awaiting an answer",
            calls_in_flight.clone(),
        );
        let sagas_purged = Counter::default();
        registry.register(
            "sagas_purged",
            "Finished sagas deleted by retention",
            sagas_purged.clone(),
        );
        let fenced_writes = Counter::default();
        registry.register(
            "stale_writes_refused",
            "Journal writes the database refused because their shard lease was taken over \
             (this replica was paused or cut off past its lease)",
            fenced_writes.clone(),
        );
        let sends_withheld = Counter::default();
        registry.register(
            "calls_withheld",
            "Participant calls not sent because this replica's shard lease had lapsed",
            sends_withheld.clone(),
        );
        let shards_held = Gauge::default();
        registry.register(
            "shards_held",
            "Shards whose lease this replica holds",
            shards_held.clone(),
        );
        let shards_acquired = Counter::default();
        registry.register(
            "shards_acquired",
            "Shard leases taken (free shards, or taken over from a replica whose lease expired)",
            shards_acquired.clone(),
        );
        let shards_lost = Counter::default();
        registry.register(
            "shards_lost",
            "Shard leases lost (another replica took them, or they lapsed unrenewed)",
            shards_lost.clone(),
        );
        let shards_released = Counter::default();
        registry.register(
            "shards_released",
            "Shard leases given back (rebalancing, shutdown)",
            shards_released.clone(),
        );
        let journal_commits = Counter::default();
        registry.register(
            "journal_commits",
            "Durable journal writes (one transaction and one fsync each)",
            journal_commits.clone(),
        );
        let journal_requests = Counter::default();
        registry.register(
            "journal_requests",
            "Write requests carried by those durable writes (group commit)",
            journal_requests.clone(),
        );
        let journal_events = Counter::default();
        registry.register(
            "journal_events",
            "Events appended to the journal",
            journal_events.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Sagaflow's version", build_info);
        for status in ["running", "compensating"] {
            sagas_live.get_or_create(&StatusLabel { status }).set(0);
        }
        Metrics {
            registry,
            sagas_started,
            sagas_finished,
            sagas_live,
            step_attempts,
            step_duration,
            rejected,
            journal_write_seconds,
            calls_in_flight,
            sagas_purged,
            fenced_writes,
            sends_withheld,
            shards_held,
            shards_acquired,
            shards_lost,
            shards_released,
            journal_commits,
            journal_requests,
            journal_events,
            journal_seen: parking_lot::Mutex::new(sagaflow_store::StoreStats::default()),
        }
    }

    /// Brings the journal counters up to the store's own (called when metrics are scraped).
    pub fn sync_store(&self, now: sagaflow_store::StoreStats) {
        let mut seen = self.journal_seen.lock();
        self.journal_commits
            .inc_by(now.commits.saturating_sub(seen.commits));
        self.journal_requests
            .inc_by(now.requests.saturating_sub(seen.requests));
        self.journal_events
            .inc_by(now.events.saturating_sub(seen.events));
        *seen = now;
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
