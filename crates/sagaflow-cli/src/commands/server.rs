//! `sagaflow server`: logging to stdout, a multi-thread runtime, and the coordinator run until
//! SIGTERM or Ctrl-C.

use std::future::Future;
use std::time::Duration;

use sagaflow_server::config::ClusterSettings;
use sagaflow_server::{Config, EventLoop, Limits};
use tracing_subscriber::EnvFilter;

use crate::cli::{LimitArgs, LogFormat, ServerArgs};
use crate::error::Error;

/// Runs the coordinator until a shutdown signal, then lets it drain.
pub fn run(args: ServerArgs) -> Result<(), Error> {
    init_logging(args.log_format, &args.log_level)?;
    let config = config(&args);
    let cannot = |e: std::io::Error| Error::Other(format!("cannot start the async runtime: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(cannot)?;
    // One event loop per core: this thread's and one thread each for the others, kept running
    // until the coordinator has drained (`sagaflow_server::serve_loops`), then stopped.
    let count = args.event_loops.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let others = (1..count)
        .map(|index| EventLoop::start(format!("sagaflow-{index}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(cannot)?;
    let loops = others.iter().map(EventLoop::handle).collect();
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal(args.stop_with_stdin)
            .map_err(|e| Error::Other(format!("cannot listen for shutdown signals: {e}")))?;
        tracing::info!(
            listen = %config.listen,
            data_dir = %config.data_dir.display(),
            "starting the coordinator"
        );
        sagaflow_server::run(config, loops, shutdown).await?;
        tracing::info!("coordinator stopped");
        Ok(())
    });
    drop(others);
    served
}

/// The server's configuration from the flags; limits left out keep their defaults.
fn config(args: &ServerArgs) -> Config {
    let defaults = Config::default();
    Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        limits: limits(&args.limits),
        shutdown_grace: args
            .shutdown_grace_secs
            .map_or(defaults.shutdown_grace, Duration::from_secs),
        retention: match args.retention_hours {
            None => defaults.retention,
            Some(0) => None,
            Some(hours) => Some(Duration::from_secs(hours.saturating_mul(3600))),
        },
        store: args.store.clone(),
        cluster: ClusterSettings {
            shards: args.shards,
            lease_ttl: Duration::from_millis(args.lease_ttl_ms),
            replica_id: args.replica_id.clone(),
        },
    }
}

fn limits(args: &LimitArgs) -> Limits {
    let defaults = Limits::default();
    Limits {
        body_bytes_max: args
            .max_body_bytes
            .map_or(defaults.body_bytes_max, usize::from),
        input_bytes_max: args
            .max_input_bytes
            .map_or(defaults.input_bytes_max, usize::from),
        output_bytes_max: args
            .max_output_bytes
            .map_or(defaults.output_bytes_max, usize::from),
        steps_max: args.max_steps.map_or(defaults.steps_max, usize::from),
        sagas_active_max: args
            .max_active_sagas
            .map_or(defaults.sagas_active_max, usize::from),
        wait_ms_max: args.max_wait_ms.unwrap_or(defaults.wait_ms_max),
        list_limit_max: args
            .max_list_limit
            .map_or(defaults.list_limit_max, usize::from),
        calls_in_flight_max: args
            .max_calls_in_flight
            .map_or(defaults.calls_in_flight_max, usize::from),
    }
}

/// Log lines to stdout, filtered by `directive` (an EnvFilter directive).
fn init_logging(format: LogFormat, directive: &str) -> Result<(), Error> {
    let filter = EnvFilter::try_new(directive).map_err(|e| {
        Error::Input(format!(
            "--log-level {directive:?} is not a valid filter: {e}"
        ))
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // Colours only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| Error::Other(format!("cannot set up logging: {e}")))
}

/// A future that resolves on the first SIGTERM or SIGINT (Ctrl-C), or at stdin's end when
/// asked. The handlers are installed now, so a signal that arrives before the future is polled
/// is not lost.
#[cfg(unix)]
fn shutdown_signal(
    stop_with_stdin: bool,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let stdin_closed = crate::stdin_end::closed_if(stop_with_stdin);
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = interrupt.recv() => tracing::info!("interrupt received; shutting down"),
            () = stdin_closed => tracing::info!("stdin closed; shutting down"),
        }
    })
}

/// A future that resolves on Ctrl-C, or at stdin's end when asked.
#[cfg(not(unix))]
fn shutdown_signal(
    stop_with_stdin: bool,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let stdin_closed = crate::stdin_end::closed_if(stop_with_stdin);
    Ok(async move {
        tokio::select! {
            // As before: a Ctrl-C handler that cannot be installed ends the wait too.
            result = tokio::signal::ctrl_c() => {
                if result.is_ok() {
                    tracing::info!("interrupt received; shutting down");
                }
            }
            () = stdin_closed => tracing::info!("stdin closed; shutting down"),
        }
    })
}

/// `sagaflow migrate`: brings a PostgreSQL journal's schema up to date.
pub fn migrate(args: crate::cli::MigrateArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(sagaflow_server::migrate_store(&args.store))?;
    println!("the journal's schema is up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn server_args(argv: &[&str]) -> ServerArgs {
        let cli = Cli::try_parse_from(argv).expect("the arguments parse");
        match cli.command {
            Command::Server(args) => args,
            other => panic!("expected the server command, got {other:?}"),
        }
    }

    #[test]
    fn flags_left_out_keep_the_server_defaults() {
        let config = config(&server_args(&["sagaflow", "server"]));
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.data_dir, defaults.data_dir);
        assert_eq!(config.shutdown_grace, defaults.shutdown_grace);
        assert_eq!(
            config.limits.sagas_active_max,
            defaults.limits.sagas_active_max
        );
        assert_eq!(config.limits.body_bytes_max, defaults.limits.body_bytes_max);
    }

    #[test]
    fn limit_flags_reach_the_config() {
        let config = config(&server_args(&[
            "sagaflow",
            "server",
            "--listen",
            "0.0.0.0:9000",
            "--data-dir",
            "/var/lib/sagaflow",
            "--max-active-sagas",
            "10",
            "--max-body-bytes",
            "2048",
            "--max-wait-ms",
            "0",
            "--shutdown-grace-secs",
            "3",
        ]));
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.data_dir.to_str(), Some("/var/lib/sagaflow"));
        assert_eq!(config.limits.sagas_active_max, 10);
        assert_eq!(config.limits.body_bytes_max, 2048);
        assert_eq!(config.limits.wait_ms_max, 0);
        assert_eq!(config.shutdown_grace, Duration::from_secs(3));
    }

    #[test]
    fn a_bad_log_filter_is_an_input_error() {
        let error = init_logging(LogFormat::Text, "info,=[").expect_err("not a directive");
        assert!(matches!(error, Error::Input(_)), "{error:?}");
    }
}
