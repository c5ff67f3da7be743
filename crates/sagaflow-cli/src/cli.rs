//! The command line, as clap types. Every flag can also come from a `SAGAFLOW_*` variable.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sagaflow: run the durable saga coordinator, and act on its definitions and sagas.
#[derive(Debug, Parser)]
#[command(name = "sagaflow", version)]
pub struct Cli {
    /// The Sagaflow server that the client commands talk to.
    #[arg(
        long,
        global = true,
        env = "SAGAFLOW_SERVER",
        default_value = "http://127.0.0.1:7070",
        value_name = "URL"
    )]
    pub server: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the coordinator until SIGTERM or Ctrl-C.
    Server(ServerArgs),
    /// Register and read saga definitions.
    #[command(subcommand)]
    Def(DefCommand),
    /// Start, read, list, cancel and retry sagas.
    #[command(subcommand)]
    Saga(SagaCommand),
    /// Benchmark the coordinator against a minimal participant (and the `direct` baseline).
    Bench(crate::bench::BenchArgs),
    /// Apply the journal's schema migrations to a PostgreSQL store, then exit (for operators
    /// who run them apart from the servers, e.g. as a Kubernetes Job).
    Migrate(MigrateArgs),
    /// The bench's minimal participant (started by `sagaflow bench`).
    #[command(hide = true)]
    BenchParticipant(crate::bench::BenchParticipantArgs),
    /// Run the example shop: the coordinator and four services as processes on loopback, a
    /// workload of orders that takes every path, and a check of the invariants.
    Demo(Box<crate::demo::DemoArgs>),
    /// Run one service of the example shop (started by `sagaflow demo`).
    #[command(hide = true)]
    ShopService(Box<crate::demo::ShopServiceArgs>),
}

/// The most event loops `--event-loops` may ask for.
pub const EVENT_LOOPS_MAX: u16 = 256;

/// `sagaflow server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the HTTP API listens.
    #[arg(
        long,
        env = "SAGAFLOW_LISTEN",
        default_value = "127.0.0.1:7070",
        value_name = "ADDR"
    )]
    pub listen: std::net::SocketAddr,

    /// Where the journal lives.
    #[arg(
        long,
        env = "SAGAFLOW_DATA_DIR",
        default_value = "./sagaflow-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// How log lines are written to stdout.
    #[arg(long, env = "SAGAFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which log lines are written: a tracing EnvFilter directive, e.g. `info` or
    /// `info,sagaflow_server=debug`.
    #[arg(
        long,
        env = "SAGAFLOW_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_level: String,

    /// How long a graceful shutdown waits for in-flight participant calls, in seconds.
    #[arg(long, env = "SAGAFLOW_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Also shut down gracefully when stdin reaches its end: for a parent process (a test, a
    /// benchmark) that may die without stopping its children.
    #[arg(long, env = "SAGAFLOW_STOP_WITH_STDIN")]
    pub stop_with_stdin: bool,

    /// Event loops serving the API and driving sagas, one thread each (a connection, and the
    /// sagas it starts, stay on one loop). Default: the cores this process may use.
    #[arg(long, env = "SAGAFLOW_EVENT_LOOPS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(EVENT_LOOPS_MAX)))]
    pub event_loops: Option<u16>,

    /// The journal: left out, the embedded SQLite file in --data-dir; or a `postgres://` URL
    /// (several replicas share one PostgreSQL database; migrations run at start).
    #[arg(long, env = "SAGAFLOW_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// How long completed and compensated sagas are kept before retention purges them, in
    /// hours; 0 keeps them forever. Failed sagas are never purged. Default: 168 (7 days).
    #[arg(long, env = "SAGAFLOW_RETENTION_HOURS", value_name = "HOURS")]
    pub retention_hours: Option<u64>,

    /// Replicas on a shared store: the shard count of a new cluster (fixed once it exists).
    #[arg(long, env = "SAGAFLOW_SHARDS", value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(sagaflow_server::config::SHARDS_MAX)))]
    pub shards: u32,

    /// Replicas on a shared store: how long a shard lease lasts unrenewed, in milliseconds
    /// (a dead replica's shards are taken over within it). Renewed five times per lease.
    #[arg(long, env = "SAGAFLOW_LEASE_TTL_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub lease_ttl_ms: u64,

    /// Replicas on a shared store: this replica's name in the lease table (default: host,
    /// process id and a random suffix; in Kubernetes, the pod's name).
    #[arg(long, env = "SAGAFLOW_REPLICA_ID", value_name = "NAME")]
    pub replica_id: Option<String>,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `sagaflow migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to bring up to date (the embedded store migrates itself).
    #[arg(long, env = "SAGAFLOW_STORE", value_name = "URL")]
    pub store: String,
}

/// The coordinator's limits; each one left out keeps the server's default.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Largest request body the API accepts (413 above).
    #[arg(long, env = "SAGAFLOW_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<NonZeroUsize>,

    /// Largest saga input (422 above).
    #[arg(long, env = "SAGAFLOW_MAX_INPUT_BYTES", value_name = "BYTES")]
    pub max_input_bytes: Option<NonZeroUsize>,

    /// Largest step output recorded from a participant (the attempt fails above).
    #[arg(long, env = "SAGAFLOW_MAX_OUTPUT_BYTES", value_name = "BYTES")]
    pub max_output_bytes: Option<NonZeroUsize>,

    /// Steps per definition (422 above).
    #[arg(long, env = "SAGAFLOW_MAX_STEPS", value_name = "N")]
    pub max_steps: Option<NonZeroUsize>,

    /// Sagas running or compensating at once; a start above it answers 429.
    #[arg(long, env = "SAGAFLOW_MAX_ACTIVE_SAGAS", value_name = "N")]
    pub max_active_sagas: Option<NonZeroUsize>,

    /// Longest `?wait_ms` honoured, in milliseconds; larger values are capped.
    #[arg(long, env = "SAGAFLOW_MAX_WAIT_MS", value_name = "MS")]
    pub max_wait_ms: Option<u64>,

    /// Largest page of `GET /v1/sagas`.
    #[arg(long, env = "SAGAFLOW_MAX_LIST_LIMIT", value_name = "N")]
    pub max_list_limit: Option<NonZeroUsize>,

    /// Participant calls in flight at once, over all sagas.
    #[arg(long, env = "SAGAFLOW_MAX_CALLS_IN_FLIGHT", value_name = "N")]
    pub max_calls_in_flight: Option<NonZeroUsize>,
}

/// The shape of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `sagaflow def …`.
#[derive(Debug, Subcommand)]
pub enum DefCommand {
    /// Register the definition in FILE (JSON; `-` reads stdin).
    Apply {
        /// The definition's JSON file.
        file: PathBuf,
    },
    /// List the latest version of every definition.
    List,
    /// Print a definition as JSON.
    Get {
        /// The definition's name.
        name: String,
        /// Another version than the latest.
        #[arg(long)]
        version: Option<u32>,
    },
}

/// `sagaflow saga …`.
#[derive(Debug, Subcommand)]
pub enum SagaCommand {
    /// Start a saga, and print its id and status.
    Start {
        /// The definition to run.
        definition: String,
        /// The saga's input: JSON, or `@FILE` to read it from a file.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// The definition's version; its latest when left out.
        #[arg(long)]
        version: Option<u32>,
        /// Starting again with the same key returns the saga already started.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Wait up to MS milliseconds for the saga to end before answering.
        #[arg(long, value_name = "MS")]
        wait: Option<u64>,
        /// Print the whole saga as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a saga and its steps.
    Get {
        /// The saga's id.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a saga's journal, oldest first.
    History {
        /// The saga's id.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List sagas, newest first.
    List {
        /// Only sagas in this status (running, compensating, completed, compensated, failed).
        #[arg(long)]
        status: Option<String>,
        /// Only sagas of this definition.
        #[arg(long)]
        definition: Option<String>,
        /// At most N sagas.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Continue from the cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a saga: it takes no new step and compensates what completed.
    Cancel {
        /// The saga's id.
        id: String,
        /// Print the whole saga as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume the compensations of a failed saga.
    Retry {
        /// The saga's id.
        id: String,
        /// Print the whole saga as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_server_flag_is_global_and_defaults_to_the_local_coordinator() {
        let cli = Cli::try_parse_from(["sagaflow", "saga", "get", "0193"]).expect("parses");
        assert_eq!(cli.server, "http://127.0.0.1:7070");
        let cli =
            Cli::try_parse_from(["sagaflow", "saga", "get", "0193", "--server", "http://h:1"])
                .expect("parses");
        assert_eq!(cli.server, "http://h:1");
    }

    #[test]
    fn a_zero_limit_is_refused() {
        let parsed = Cli::try_parse_from(["sagaflow", "server", "--max-active-sagas", "0"]);
        assert!(parsed.is_err());
    }
}
