//! SIGTERM: the coordinator stops taking work, ends long polls, lets in-flight calls answer,
//! flushes the journal and exits 0; a restart finishes whatever was left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod process;

use std::time::{Duration, Instant};

use process::{Participant, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_a_restart_finishes_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let participant_process = Participant::start().await;
    let participant = participant_process.base.clone();
    let mut server = Server::start(data.path()).await;
    let base = server.base.clone();

    let http = reqwest::Client::new();
    let step = |name: &str| json!({"name": name, "action": {"url": format!("{participant}/{name}?delay_ms=200")}});
    let definition = json!({"name": "slow", "steps": [step("one"), step("two"), step("three")]});
    let registered =
        process::post_json(&http, &format!("{base}/v1/definitions"), &definition).await;
    assert_eq!(registered["version"], 1, "{registered}");
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"definition": "slow", "input": i});
        let saga = process::post_json(&http, &format!("{base}/v1/sagas"), &body).await;
        ids.push(saga["id"].as_str().unwrap().to_owned());
    }
    // A long poll in progress must not hold the shutdown up.
    let poll = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/v1/sagas/{}?wait_ms=30000", ids[0]);
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopped = Instant::now();
    let status = server.terminate().expect("the server exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    let _ = poll.await;

    server.restart().await;
    for id in &ids {
        process::wait_for_status(&http, &base, id, "completed", Duration::from_secs(30)).await;
    }
    assert!(server.terminate().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stop_with_stdin_the_server_drains_and_exits_zero_when_its_stdin_closes() {
    let data = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", process::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .args([
            "server",
            "--listen",
            &base["http://".len()..],
            "--stop-with-stdin",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("SAGAFLOW_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    process::wait_ready(&format!("{base}/readyz")).await;
    assert!(child.try_wait().unwrap().is_none(), "it stopped on its own");

    // The parent's end of the pipe goes, as it does when the parent dies.
    drop(child.stdin.take());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after its stdin closed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

/// The names of a process's threads (Linux: `/proc/PID/task/*/comm`).
#[cfg(target_os = "linux")]
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_loop_lets_its_calls_answer_at_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let participant_process = Participant::start().await;
    let participant = participant_process.base.clone();
    let mut server = Server::start_with(data.path(), &["--event-loops", "3"]).await;
    let base = server.base.clone();
    let names = thread_names(server.pid().unwrap());
    for name in ["sagaflow-1", "sagaflow-2"] {
        assert!(
            names.iter().any(|n| n == name),
            "no thread {name} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "sagaflow-3"), "{names:?}");

    let definition = json!({"name": "held", "steps": [
        {"name": "one", "action": {"url": format!("{participant}/one?delay_ms=400")}},
        {"name": "two", "action": {"url": format!("{participant}/two")}},
    ]});
    let http = reqwest::Client::new();
    let registered =
        process::post_json(&http, &format!("{base}/v1/definitions"), &definition).await;
    assert_eq!(registered["version"], 1, "{registered}");
    // A client, so a connection, per saga: connections are handed to the loops in turn.
    let mut ids = Vec::new();
    for i in 0..6 {
        let body = json!({"definition": "held", "input": i});
        let saga =
            process::post_json(&reqwest::Client::new(), &format!("{base}/v1/sagas"), &body).await;
        ids.push(saga["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = server.terminate().expect("the server exits");
    assert!(status.success(), "exit status {status:?}");

    // Every call in flight at the signal (step one's) was answered and journaled before the
    // exit, on whichever loop it ran: after the restart only step two's attempt, journaled
    // during the drain and never sent (a draining coordinator sends nothing new), is sent.
    server.restart().await;
    let http = reqwest::Client::new();
    for id in &ids {
        process::wait_for_status(&http, &base, id, "completed", Duration::from_secs(30)).await;
        let history = process::get_json(&http, &format!("{base}/v1/sagas/{id}/history")).await;
        let events: Vec<(&str, &str)> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap(),
                    e["step"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert!(
            events.contains(&("attempt_succeeded", "one")),
            "{id}: {events:?}"
        );
        assert!(
            !events.contains(&("attempt_resent", "one")),
            "{id}: step one's call was cut off: {events:?}"
        );
    }
    assert!(server.terminate().unwrap().success());
}
