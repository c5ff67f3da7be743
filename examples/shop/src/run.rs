//! Running one service as a process: its flags, logging, the listener, and shutdown on
//! SIGTERM, Ctrl-C, or (with `--stop-with-stdin`) when its parent goes away.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, FromArgMatches};
use tracing_subscriber::EnvFilter;

use crate::chaos::{Chaos, ChaosConfig};
use crate::{Db, Error, Service, Target, app};

/// PostgreSQL connections per service unless told otherwise.
const PG_POOL_SIZE_DEFAULT: usize = 8;

/// A service's command line (each flag also from a `SHOP_*` variable).
#[derive(Clone, Debug, Args)]
pub struct ServiceArgs {
    /// Where to listen; the service's own port on loopback when left out
    /// (orders 8101, inventory 8102, payments 8103, shipping 8104).
    #[arg(long, env = "SHOP_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The service's database: a SQLite file (`shop-<service>.db` when left out), or a
    /// `postgres://user@host:port/db` URL.
    #[arg(long, env = "SHOP_DB", value_name = "PATH|URL")]
    pub db: Option<String>,

    /// With a PostgreSQL `--db`: the schema for the service's tables (created when missing).
    #[arg(long, env = "SHOP_PG_SCHEMA", value_name = "NAME")]
    pub pg_schema: Option<String>,

    /// With a PostgreSQL `--db`: connections in the pool.
    #[arg(long, env = "SHOP_PG_POOL_SIZE", default_value_t = PG_POOL_SIZE_DEFAULT, value_name = "N")]
    pub pg_pool_size: usize,

    /// Share of deliveries answered `503` before anything is done (transient failures).
    #[arg(long, env = "SHOP_FAIL_RATE", default_value_t = 0.0, value_parser = rate, value_name = "F")]
    pub fail_rate: f64,

    /// Share of deliveries applied and committed, then answered `503` as if the answer was
    /// lost (the retry must be deduped).
    #[arg(long, env = "SHOP_LOST_ANSWER_RATE", default_value_t = 0.0, value_parser = rate, value_name = "F")]
    pub lost_answer_rate: f64,

    /// Share of deliveries that sleep `--slow-ms` first.
    #[arg(long, env = "SHOP_SLOW_RATE", default_value_t = 0.0, value_parser = rate, value_name = "F")]
    pub slow_rate: f64,

    /// How long a slow delivery sleeps.
    #[arg(long, env = "SHOP_SLOW_MS", default_value_t = 200, value_name = "MS")]
    pub slow_ms: u64,

    /// Seed of the fault injector's random numbers.
    #[arg(long, env = "SHOP_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Which log lines are written to stdout (a tracing EnvFilter directive).
    #[arg(long, env = "SHOP_LOG", default_value = "info", value_name = "FILTER")]
    pub log_level: String,

    /// Exit when stdin closes: a parent that dies (even by `kill -9`) takes the service with it.
    #[arg(long)]
    pub stop_with_stdin: bool,
}

fn rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

impl ServiceArgs {
    /// The fault injector's settings.
    pub fn chaos(&self) -> ChaosConfig {
        ChaosConfig {
            fail_rate: self.fail_rate,
            lost_answer_rate: self.lost_answer_rate,
            slow_rate: self.slow_rate,
            slow_ms: self.slow_ms,
            seed: self.seed,
        }
    }

    /// The database, with the default file for `service`.
    pub fn target(&self, service: Service) -> Result<Target, Error> {
        let default = format!("shop-{}.db", service.name());
        Target::parse(
            self.db.as_deref().unwrap_or(&default),
            self.pg_schema.as_deref(),
        )
    }
}

/// Serves `service` on `listener` until `shutdown` resolves.
pub async fn serve(
    service: Service,
    args: &ServiceArgs,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let target = args.target(service)?;
    let db = Db::open(service, &target, args.pg_pool_size).await?;
    let chaos = Arc::new(Chaos::new(args.chaos()));
    tracing::info!(
        %service,
        listen = %listener.local_addr()?,
        db = %target.describe(),
        chaos = ?args.chaos(),
        "serving"
    );
    axum::serve(listener, app(service, db, chaos))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%service, "stopped");
    Ok(())
}

/// Runs `service` as this process: logging, a runtime, the listener, until a signal.
pub fn run(service: Service, args: ServiceArgs) -> Result<(), Error> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| Error::Config(format!("--log-level {:?}: {e}", args.log_level)))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init()
        .map_err(|e| Error::Config(format!("cannot set up logging: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(format!("shop-{service}"))
        .build()?;
    runtime.block_on(async {
        let listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], service.default_port())));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let shutdown = shutdown_signal(args.stop_with_stdin)?;
        serve(service, &args, listener, shutdown).await
    })
}

/// A binary's `main`: parses `shop-<service>`'s flags and runs it; errors as one line.
pub fn main(service: Service) -> ExitCode {
    let name = service.binary();
    let command = ServiceArgs::augment_args(clap::Command::new(name))
        .version(env!("CARGO_PKG_VERSION"))
        .about("A service of the example shop: a Sagaflow participant with its own database");
    let args = match ServiceArgs::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match run(service, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM, SIGINT, or stdin's end when asked. The handlers are installed now,
/// so a signal that arrives before the future is polled is not lost.
fn shutdown_signal(
    stop_with_stdin: bool,
) -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (stdin_closed, mut stdin_closed_rx) = tokio::sync::oneshot::channel::<()>();
    if stop_with_stdin {
        // A plain thread: a blocking read on tokio's stdin would hold the runtime open.
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            loop {
                match std::io::Read::read(&mut std::io::stdin(), &mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = stdin_closed.send(());
        });
    }
    // Without the thread the sender is dropped here, and that branch of the select is off.
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = interrupt.recv() => tracing::info!("interrupt received; shutting down"),
            Ok(()) = &mut stdin_closed_rx => tracing::info!("stdin closed; shutting down"),
        }
    })
}
