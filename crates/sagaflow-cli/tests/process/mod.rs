//! Child processes for end-to-end tests: killed when dropped, so a failing test leaves
//! nothing running.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Child(Option<std::process::Child>);

impl Child {
    pub fn spawn(binary: &str, args: &[&str]) -> Child {
        let child = Command::new(binary)
            .args(args)
            .env("SAGAFLOW_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {binary}: {e}"));
        Child(Some(child))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(std::process::Child::id)
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("the process runs");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Whether it is still running (it did not exit or crash).
    pub fn is_running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for a graceful exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `url` until it answers 2xx.
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The example participant, started on a free port and ready.
pub struct Participant {
    _child: Child,
    pub base: String,
}

impl Participant {
    pub async fn start() -> Participant {
        let port = free_port();
        let child = Child::spawn(
            env!("CARGO_BIN_EXE_sagaflow-example-participant"),
            &["--listen", &format!("127.0.0.1:{port}")],
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{base}/healthz")).await;
        Participant {
            _child: child,
            base,
        }
    }
}

/// `sagaflow server` on a free port and a data directory, started and ready; it can be
/// killed and started again on the same port and data.
pub struct Server {
    child: Child,
    args: Vec<String>,
    pub base: String,
}

impl Server {
    pub async fn start(data_dir: &std::path::Path) -> Server {
        Server::start_with(data_dir, &[]).await
    }

    /// As `start`, with more arguments for `sagaflow server`.
    pub async fn start_with(data_dir: &std::path::Path, extra: &[&str]) -> Server {
        let port = free_port();
        let args: Vec<String> = [
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]
        .iter()
        .chain(extra)
        .map(|a| (*a).to_owned())
        .collect();
        let base = format!("http://127.0.0.1:{port}");
        let child = Server::spawn(&args);
        wait_ready(&format!("{base}/readyz")).await;
        Server { child, args, base }
    }

    fn spawn(args: &[String]) -> Child {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Child::spawn(env!("CARGO_BIN_EXE_sagaflow"), &args)
    }

    pub fn kill_9(&mut self) {
        self.child.kill_9();
    }

    /// Starts it again (after `kill_9` or `terminate`) and waits until it is ready.
    pub async fn restart(&mut self) {
        self.child = Server::spawn(&self.args);
        wait_ready(&format!("{}/readyz", self.base)).await;
    }

    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.terminate()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }
}

/// GETs `url` and reads its JSON body.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Long-polls saga `id` on the coordinator at `base` until its status is `status`; fails the
/// test after `within`. Returns the saga as it then stands.
pub async fn wait_for_status(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    status: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let saga = get_json(http, &format!("{base}/v1/sagas/{id}?wait_ms=2000")).await;
        if saga["status"] == status {
            return saga;
        }
        assert!(Instant::now() < deadline, "{saga:#}");
    }
}

/// POSTs `body` as JSON to `url` and reads the JSON answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
