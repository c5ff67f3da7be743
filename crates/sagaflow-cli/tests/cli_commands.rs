//! The `sagaflow` client commands as a person runs them, against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod process;

use std::process::Command;

use process::{Child, free_port, wait_ready};

fn sagaflow(server: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .arg("--server")
        .arg(server)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_applies_a_definition_starts_reads_lists_and_cancels() {
    let data = tempfile::tempdir().unwrap();
    let participant_port = free_port();
    let _participant = Child::spawn(
        env!("CARGO_BIN_EXE_sagaflow-example-participant"),
        &["--listen", &format!("127.0.0.1:{participant_port}")],
    );
    wait_ready(&format!("http://127.0.0.1:{participant_port}/healthz")).await;
    let port = free_port();
    let _server = Child::spawn(
        env!("CARGO_BIN_EXE_sagaflow"),
        &[
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
    );
    let server = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{server}/readyz")).await;

    let file = data.path().join("def.json");
    let p = format!("http://127.0.0.1:{participant_port}");
    std::fs::write(
        &file,
        serde_json::json!({"name": "order", "steps": [
            {"name": "reserve", "action": {"url": format!("{p}/r")}, "compensation": {"url": format!("{p}/r/undo")}},
            {"name": "ship", "action": {"url": format!("{p}/s")}}
        ]})
        .to_string(),
    )
    .unwrap();
    let (code, out, _) = sagaflow(&server, &["def", "apply", file.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "registered order v1"));
    let (code, out, _) = sagaflow(&server, &["def", "apply", file.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "order v1 unchanged"));

    let (code, out, err) = sagaflow(
        &server,
        &[
            "saga",
            "start",
            "order",
            "--input",
            r#"{"refuse":"ship"}"#,
            "--wait",
            "5000",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut words = out.split_whitespace();
    let id = words.next().unwrap().to_owned();
    assert_eq!(words.next(), Some("compensated"));

    let (code, out, _) = sagaflow(&server, &["saga", "get", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("compensated"), "{out}");
    let reserve = out
        .lines()
        .find(|l| l.starts_with("reserve"))
        .expect("a row per step");
    assert!(reserve.contains("compensated"), "{out}");
    let ship = out.lines().find(|l| l.starts_with("ship")).unwrap();
    assert!(ship.contains("failed"), "{out}");

    let (code, out, _) = sagaflow(&server, &["saga", "get", &id, "--json"]);
    assert_eq!(code, 0);
    let saga: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(saga["id"], id.as_str());

    let (code, out, _) = sagaflow(&server, &["saga", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");

    let (code, _, err) = sagaflow(&server, &["saga", "cancel", &id]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: 409"), "{err}");

    let (code, _, err) = sagaflow(&server, &["saga", "get", "no-such-saga"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: 404"), "{err}");

    let (code, _, err) = sagaflow(&server, &["saga", "start", "order", "--input", "{not json"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_server_that_is_down_is_one_clear_line_and_exit_1() {
    let port = free_port();
    let (code, out, err) = sagaflow(&format!("http://127.0.0.1:{port}"), &["saga", "list"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}
