//! Child processes that cannot outlive the demo: each is killed when its handle is dropped
//! (an error, a panic, Ctrl-C), and a service child also exits by itself when its stdin
//! closes, which happens even if the demo is killed with `kill -9`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How often a stopping child is looked at.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How a child is asked to stop gracefully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopBy {
    /// SIGTERM (sent with the `kill` command: no `unsafe`, no extra dependency).
    Terminate,
    /// Closing its stdin (it runs with `--stop-with-stdin`).
    CloseStdin,
}

/// A running child, killed on drop.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    stop_by: StopBy,
}

impl ChildProcess {
    /// Starts `program args…` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        stop_by: StopBy,
    ) -> Result<ChildProcess, Error> {
        let cannot = |e: std::io::Error| Error::Other(format!("cannot start {name}: {e}"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(cannot)?;
        let err = out.try_clone().map_err(cannot)?;
        let stdin = match stop_by {
            StopBy::CloseStdin => Stdio::piped(),
            StopBy::Terminate => Stdio::null(),
        };
        let child = Command::new(program)
            .args(args)
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(cannot)?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(ChildProcess {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            stop_by,
        })
    }

    /// Its name, as in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, and wait for it to be gone: no chance to flush or say goodbye.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(e) = child.kill() {
                tracing::debug!(name = %self.name, error = %e, "kill");
            }
            if let Err(e) = child.wait() {
                tracing::warn!(name = %self.name, error = %e, "cannot reap a killed child");
            }
        }
    }

    /// Asks it to stop, waits up to `grace`, then kills it.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        match self.stop_by {
            StopBy::CloseStdin => drop(child.stdin.take()),
            StopBy::Terminate => {
                let sent = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if let Err(e) = sent {
                    tracing::debug!(name = %self.name, error = %e, "kill -TERM");
                }
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                self.child = None;
                return;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
        tracing::warn!(name = %self.name, "did not stop in time; killing it");
        self.kill_9();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A loopback port free right now (the child binds it a moment later).
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Other(format!("cannot find a free port: {e}")))
}
