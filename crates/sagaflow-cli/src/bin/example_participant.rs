//! `sagaflow-example-participant`: a tiny participant service whose behaviour tests script
//! through the saga's input and the step URL's query string.
//!
//! Run it with `cargo run -p sagaflow-cli --bin sagaflow-example-participant -- --listen
//! 127.0.0.1:8101 --log deliveries.jsonl`, then point a definition's step URLs at it, e.g.
//! `http://127.0.0.1:8101/reservations?fail_times=2` (any method, any path).
//!
//! - `?fail=STATUS`: always answer STATUS (400 … 599) with a problem.
//! - `?fail_times=N&fail_status=503`: the first N deliveries of each `Idempotency-Key` fail
//!   with `fail_status` (503 when left out), later ones succeed.
//! - `?retry_after=SECS`: failure answers carry `Retry-After: SECS`.
//! - `?delay_ms=N`: wait N ms before answering (to let a test kill the coordinator mid-flight).
//! - Input `{"refuse": "STEP"}` (or a list of steps): that step's action answers 422
//!   `…/out-of-stock`. Input `{"delay_ms": N}`: every delivery waits N ms.
//! - Success is `200 {"step", "saga_id", "attempt", "ok": true}`. A key that already succeeded
//!   gets that first answer again and is listed as a duplicate. A compensation whose action
//!   it never saw is accepted.
//! - `GET /deliveries`: a JSON array `[{seq, key, saga_id, step, kind, attempt, status,
//!   duplicate, method, path, traceparent}, …]` in order of arrival (`status` is `null`
//!   while a delivery is still being handled). `GET /healthz`: 200.
//! - `--log FILE` appends the same record as one JSON line per answered delivery.
//!
//! Its first line on stdout is always `listening on ADDR`, so a test that passes `--listen
//! 127.0.0.1:0` can read the port. Log lines follow, one per answered delivery (`--log-level`
//! or `SAGAFLOW_LOG` filters them; `info` by default).

// A crate root's modules live beside it; these live in the folder named after the binary.
#[path = "example_participant/app.rs"]
mod app;
#[path = "example_participant/delivery.rs"]
mod delivery;
#[path = "example_participant/ledger.rs"]
mod ledger;
#[path = "example_participant/script.rs"]
mod script;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::app::{Participant, app};
use crate::ledger::Ledger;

/// A scriptable participant service for Sagaflow's walk-through and end-to-end tests.
#[derive(Debug, Parser)]
#[command(name = "sagaflow-example-participant", version)]
struct Args {
    /// Where to listen (port 0 picks a free one; the log line says which).
    #[arg(long, default_value = "127.0.0.1:8101", value_name = "ADDR")]
    listen: SocketAddr,
    /// Append one JSON line per answered delivery to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Which log lines go to stdout: a tracing EnvFilter directive, as for `sagaflow server`.
    #[arg(
        long,
        env = "SAGAFLOW_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    log_level: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!(
                "error: --log-level {:?} is not a valid filter: {error}",
                args.log_level
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let log = args
        .log
        .as_ref()
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener
            .local_addr()
            .context("cannot read the bound address")?;
        // A plain line, whatever the log level: tests read the port from it.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {local}")
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")?;
        drop(stdout);
        axum::serve(listener, app(Participant::new(Ledger::new(log))))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server stopped")
    })
}

/// Resolves on SIGTERM or Ctrl-C; if no handler can be installed, never (the process is
/// then stopped the hard way, which loses nothing: the participant keeps no state on disk).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
