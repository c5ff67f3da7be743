//! `sagaflow demo`: a runtime, Ctrl-C and SIGTERM handling (every child process is stopped
//! when the run is dropped), and the report on stdout. The exit code is 1 when an invariant
//! does not hold or an order did not end.

use std::future::Future;
use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::demo::DemoArgs;
use crate::demo::{self, Report};
use crate::error::Error;

/// Runs the demo (or `--check`) and prints its report.
pub fn run(args: DemoArgs) -> Result<(), Error> {
    // The demo's own log lines go to stderr, quiet unless SAGAFLOW_LOG asks for more.
    let filter = EnvFilter::try_from_env("SAGAFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // A second subscriber (in tests) is not an error worth stopping for.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let show_progress = !args.json && std::io::stdout().is_terminal();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sagaflow-demo")
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(async {
        let interrupted = interrupt_signal()
            .map_err(|e| Error::Other(format!("cannot listen for signals: {e}")))?;
        let work = async {
            if args.check {
                demo::check_only(&args).await
            } else {
                demo::demo(&args, show_progress).await
            }
        };
        tokio::select! {
            report = work => report,
            () = interrupted => Err(Error::Other(
                "interrupted: every process the demo started has been stopped".into(),
            )),
        }
    })?;
    print(&report, args.json)?;
    if report.passed() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{} invariant violations, {} orders not terminal",
            report.violations.len(),
            report.non_terminal
        )))
    }
}

fn print(report: &Report, json: bool) -> Result<(), Error> {
    let text = if json {
        let mut line = serde_json::to_string(report)
            .map_err(|e| Error::Other(format!("cannot encode the report: {e}")))?;
        line.push('\n');
        line
    } else {
        report.render()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Other(format!("cannot write to stdout: {e}"))),
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM; installed before the run starts.
fn interrupt_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
