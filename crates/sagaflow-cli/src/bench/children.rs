//! The processes the bench starts: killed when dropped, and started with `--stop-with-stdin`
//! on a pipe the bench holds, so that they stop by themselves even if the bench is killed
//! with `kill -9` (a coordinator left behind on PostgreSQL would keep its shards leased).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How long a coordinator is given to drain and hand back its shards before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A child process that is killed when dropped.
pub struct Process {
    child: Child,
    pub name: &'static str,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it gracefully: SIGTERM (sent with the `kill` command: no `unsafe`), then SIGKILL if
    /// it has not exited within `STOP_GRACE`. A coordinator on PostgreSQL hands its shards back
    /// as it drains, so a run right after this one finds them free instead of leased by a process
    /// that is gone until their lease lapses.
    pub fn stop(mut self) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !asked {
            return; // dropping it kills it
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "the {} did not stop within {} s of SIGTERM; killing it",
            self.name,
            STOP_GRACE.as_secs()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn current_exe() -> Result<std::path::PathBuf, Error> {
    std::env::current_exe().map_err(|e| Error::Other(format!("cannot find my own binary: {e}")))
}

/// Starts the bench participant and returns it with the address it listens on.
pub fn participant() -> Result<(Process, SocketAddr), Error> {
    let mut command = Command::new(current_exe()?);
    command
        .args([
            "bench-participant",
            "--listen",
            "127.0.0.1:0",
            "--stop-with-stdin",
        ])
        // `Child` keeps the pipe's other end open until it is waited for.
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit());
    // Its first line.
    spawn_listening(command, "participant", |line| {
        line.trim().strip_prefix("listening on ")?.parse().ok()
    })
}

/// Starts `sagaflow server` with its journal in `data_dir` on a port it picks itself, and
/// returns it with the address it listens on (from its own log line). A port found free here
/// and handed to the child could be taken meanwhile: a participant of another run once took one,
/// answered its `/readyz`, and the run measured nothing but errors.
pub fn coordinator(data_dir: &Path, store: &str) -> Result<(Process, SocketAddr), Error> {
    let mut command = coordinator_command(
        data_dir,
        store,
        "127.0.0.1:0"
            .parse()
            .map_err(|e| Error::Other(format!("the loopback address: {e}")))?,
    )?;
    // Its `sagaflow listening addr=…` line, and warnings (no line per saga: that would cost
    // the run).
    command
        .env("SAGAFLOW_LOG", "warn,sagaflow_server::listening=info")
        .env("SAGAFLOW_LOG_FORMAT", "text");
    spawn_listening(command, "coordinator", listening_addr)
}

/// Spawns `command` and reads its output until `address` finds where it listens in a line; the
/// rest of its output is drained, so that it never blocks on a full pipe.
fn spawn_listening(
    mut command: Command,
    name: &'static str,
    address: impl Fn(&str) -> Option<SocketAddr>,
) -> Result<(Process, SocketAddr), Error> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the {name}: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Other(format!("the {name} has no stdout")))?;
    let process = Process { child, name };
    let mut lines = BufReader::new(stdout);
    let addr = loop {
        let mut line = String::new();
        let read = lines
            .read_line(&mut line)
            .map_err(|e| Error::Other(format!("reading the {name}'s address: {e}")))?;
        if read == 0 {
            return Err(Error::Other(format!(
                "the {name} exited before it listened (its error is above)"
            )));
        }
        if let Some(addr) = address(&line) {
            break addr;
        }
    };
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    Ok((process, addr))
}

/// The address in the coordinator's `sagaflow listening addr=…` log line, if `line` is it.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("sagaflow listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .and_then(|addr| addr.parse().ok())
}

/// Starts `sagaflow server` on `addr` with its journal in `data_dir`.
pub fn coordinator_at(
    data_dir: &Path,
    store: &str,
    addr: SocketAddr,
) -> Result<(Process, SocketAddr), Error> {
    let child = coordinator_command(data_dir, store, addr)?
        .env("SAGAFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the coordinator: {e}")))?;
    Ok((
        Process {
            child,
            name: "coordinator",
        },
        addr,
    ))
}

fn coordinator_command(data_dir: &Path, store: &str, addr: SocketAddr) -> Result<Command, Error> {
    let mut command = Command::new(current_exe()?);
    command
        .arg("server")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--stop-with-stdin")
        // `Child` keeps the pipe's other end open until it is waited for.
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit());
    if store != "embedded" {
        command.env("SAGAFLOW_STORE", store);
    }
    Ok(command)
}

/// Waits until `url` answers 2xx.
pub async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    process: &mut Process,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if !process.is_running() {
            return Err(Error::Other(format!(
                "the {} exited before it was ready",
                process.name
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!("{url} was not ready within 60 s")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many `/park` calls the bench participant at `participant` has received.
pub async fn parked_calls(http: &reqwest::Client, participant: SocketAddr) -> Result<u64, Error> {
    let url = format!(
        "http://{participant}{}",
        super::participant::PARKED_CALLS_PATH
    );
    let text = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| Error::Other(format!("asking the participant for its parked calls: {e}")))?
        .text()
        .await
        .map_err(|e| Error::Other(format!("reading the participant's parked calls: {e}")))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Other(format!("the participant counted {text:?} parked calls")))
}

/// Waits until the participant has received at least `count` `/park` calls.
pub async fn wait_parked_calls(
    http: &reqwest::Client,
    participant: SocketAddr,
    count: u64,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = parked_calls(http, participant).await?;
        if seen >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "the participant received {seen} of {count} parked calls within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// CPU seconds (user + system) a process has used, from /proc (Linux; USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The most resident memory a process has had, in MiB (VmHWM).
pub fn rss_peak_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmHWM:")
}

/// The resident memory of a process now, in MiB (VmRSS).
pub fn rss_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmRSS:")
}

fn proc_status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_listening_line_only() {
        let line = "2026-12-08T00:05:01.123Z  INFO sagaflow_server::listening: sagaflow listening \
                    addr=127.0.0.1:41234 data_dir=/tmp/x\n";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_addr("WARN something addr=127.0.0.1:1\n"), None);
        assert_eq!(
            listening_addr("INFO sagaflow listening addr=nonsense\n"),
            None
        );
    }
}
