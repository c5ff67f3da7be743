//! The coordinator's settings, with their limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `run` needs to know. `Config::default()` is the embedded single-machine setup.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Where the embedded journal lives (when `store` is `None`).
    pub data_dir: PathBuf,
    /// The journal's backend: `None` for the embedded SQLite file in `data_dir`, or a
    /// `postgres://…` / `postgresql://…` URL for PostgreSQL, which several coordinators can share.
    pub store: Option<String>,
    pub limits: Limits,
    /// How long a graceful shutdown waits for in-flight participant calls before it stops.
    pub shutdown_grace: Duration,
    /// How long `completed` and `compensated` sagas are kept before they are purged with their
    /// journals; `None` keeps them forever. `failed` sagas are never purged.
    pub retention: Option<Duration>,
    /// Shards and leases, when the store is shared by replicas (PostgreSQL).
    pub cluster: ClusterSettings,
}

/// How replicas sharing a store split the sagas between them.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Shards of a new cluster (fixed once the cluster exists: a replica asking for another
    /// count uses the cluster's and says so). Several per replica, so that shards can move
    /// one at a time; every replica's fair share is `ceil(shards / replicas)`.
    pub shards: u32,
    /// How long a lease lasts unrenewed: a replica that dies has its shards taken over within
    /// this time (plus one renewal round). Renewed five times per lease time.
    pub lease_ttl: Duration,
    /// This replica's name in the lease table; a random one when `None`.
    pub replica_id: Option<String>,
}

/// Shards of a cluster at most.
pub const SHARDS_MAX: u32 = 4096;
/// Shortest lease time accepted (renewals are a fifth of it).
pub const LEASE_TTL_MIN: Duration = Duration::from_millis(500);

impl Default for ClusterSettings {
    fn default() -> ClusterSettings {
        ClusterSettings {
            shards: 64,
            lease_ttl: Duration::from_secs(10),
            replica_id: None,
        }
    }
}

/// Named limits. Every one is enforced with a clear error.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body the API accepts (413 above).
    pub body_bytes_max: usize,
    /// Largest saga input (422 above).
    pub input_bytes_max: usize,
    /// Largest step output Sagaflow records from a participant (the attempt fails above).
    pub output_bytes_max: usize,
    /// Steps per definition (422 above).
    pub steps_max: usize,
    /// Sagas running or compensating at once; a start above it answers 429 with Retry-After.
    pub sagas_active_max: usize,
    /// Longest `?wait_ms` honoured; larger values are capped.
    pub wait_ms_max: u64,
    /// Largest page of `GET /v1/sagas`.
    pub list_limit_max: usize,
    /// Participant calls in flight at once, over all sagas (the rest wait their turn).
    pub calls_in_flight_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_bytes_max: 1024 * 1024,
            input_bytes_max: 256 * 1024,
            output_bytes_max: 256 * 1024,
            steps_max: 100,
            sagas_active_max: 50_000,
            wait_ms_max: 60_000,
            list_limit_max: 1_000,
            calls_in_flight_max: 4_096,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./sagaflow-data"),
            store: None,
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            cluster: ClusterSettings::default(),
        }
    }
}
