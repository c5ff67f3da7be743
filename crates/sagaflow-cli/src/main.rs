//! `sagaflow`: run the coordinator (`sagaflow server`), act on its definitions and sagas
//! from a terminal (`sagaflow def …`, `sagaflow saga …`), and see it all work on the example
//! shop (`sagaflow demo`). `sagaflow --help` lists it all.
//!
//! Codemap: `cli.rs` is the command line (clap), `commands/` runs each command group and
//! returns what to print, `demo/` is `sagaflow demo` (processes, workload, check, report),
//! `render.rs` and `table.rs` turn answers into text, `input.rs` reads the user's files and
//! JSON, `stdin_end.rs` is `--stop-with-stdin`, `error.rs` turns any failure into one `error: …` line and an exit
//! code (1 for a server or network problem, 2 for bad input). Nothing here panics on bad input
//! or on a closed stdout.

mod bench;
mod cli;
mod commands;
mod demo;
mod error;
mod input;
mod render;
mod stdin_end;
mod table;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// mimalloc: the coordinator allocates many small, short-lived buffers per saga step; glibc's
/// allocator showed up at about a tenth of its CPU in a profile (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // If stderr itself is gone there is nobody left to tell.
            let _ = writeln!(std::io::stderr(), "{}", error.line());
            error.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Server(args) => commands::server::run(args),
        Command::Demo(args) => commands::demo::run(*args),
        Command::ShopService(args) => commands::shop_service::run(*args),
        Command::Bench(args) => print(bench::run(args)?),
        Command::Migrate(args) => commands::server::migrate(args),
        Command::BenchParticipant(args) => bench::serve_participant(args),
        Command::Def(command) => {
            let client = client(&cli.server)?;
            print(block_on(commands::def::run(&client, command))?)
        }
        Command::Saga(command) => {
            let client = client(&cli.server)?;
            print(block_on(commands::saga::run(&client, command))?)
        }
    }
}

fn client(server: &str) -> Result<sagaflow::Client, Error> {
    sagaflow::Client::new(server).map_err(|e| Error::Input(format!("--server {e}")))
}

/// Runs a client command on a single-thread runtime: one request needs no more.
fn block_on<F: std::future::Future<Output = Result<String, Error>>>(
    command: F,
) -> Result<String, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?
        .block_on(command)
}

/// Writes a command's output. A reader that went away early (`sagaflow saga list | head`) is
/// not an error.
fn print(text: String) -> Result<(), Error> {
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
