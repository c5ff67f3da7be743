//! End to end: the real `sagaflow demo`, which starts the coordinator and the four shop
//! services as processes, kills the coordinator mid-run (`--chaos`), and checks the
//! invariants in every service's own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

/// Small enough to stay fast, large enough to take every path and a restart.
const ORDERS: u64 = 60;

/// Fail in a minute rather than hang for the demo's default five.
const DEADLINE_SECS: &str = "60";

/// The PostgreSQL the tests use unless `SAGAFLOW_TEST_POSTGRES_URL` says otherwise.
const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `sagaflow demo ARGS --json`; its report and whether it exited 0.
fn demo(args: &[&str]) -> (Value, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .arg("demo")
        .args(args)
        .args(["--json", "--deadline-secs", DEADLINE_SECS])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the report is JSON ({e}): {stdout}\nstderr: {stderr}"));
    (report, output.status.success())
}

/// Every order ended, nothing is violated, and every path was taken.
fn assert_sound(report: &Value) {
    assert_eq!(report["violations"], Value::Array(vec![]), "{report:#}");
    assert_eq!(report["non_terminal"], 0, "{report:#}");
    assert_eq!(report["orders"], ORDERS, "{report:#}");
    let ended = ["completed", "compensated", "failed"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(ended, ORDERS, "{report:#}");
    assert!(report["completed"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["compensated"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["coordinator_restarts"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        report["duplicates_deduped"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(report["retries"].as_u64().unwrap() > 0, "{report:#}");
}

/// PostgreSQL's URL when it answers; `None`, said loudly, when it does not, unless CI
/// requires it (`SAGAFLOW_REQUIRE_POSTGRES`), where its absence fails the test.
fn postgres_url() -> Option<String> {
    let url = std::env::var("SAGAFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| POSTGRES_URL_DEFAULT.to_owned());
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        std::time::Duration::from_secs(1),
    )
    .is_ok();
    if reachable {
        return Some(url);
    }
    assert!(
        std::env::var("SAGAFLOW_REQUIRE_POSTGRES").is_err(),
        "PostgreSQL is required (SAGAFLOW_REQUIRE_POSTGRES) but 127.0.0.1:5432 does not answer"
    );
    eprintln!(
        "SKIPPED: PostgreSQL is not reachable on 127.0.0.1:5432; the demo with payments on PostgreSQL did not run"
    );
    None
}

#[test]
fn the_demo_with_chaos_ends_with_every_order_terminal_and_no_violation() {
    let (report, ok) = demo(&["--orders", "60", "--chaos"]);
    assert_sound(&report);
    assert!(ok, "the demo exits 0 when all holds: {report:#}");
}

#[test]
fn the_demo_with_payments_on_postgres_holds_too() {
    let Some(url) = postgres_url() else {
        return;
    };
    let (report, ok) = demo(&["--orders", "60", "--chaos", "--payments-store", &url]);
    assert_sound(&report);
    assert!(
        report["stores"]["payments"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL"),
        "{report:#}"
    );
    assert!(ok, "{report:#}");
}

#[test]
fn the_check_of_a_kept_data_directory_catches_a_tampered_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (report, ok) = demo(&["--orders", "60", "--data-dir", data_dir]);
    assert!(ok, "{report:#}");

    let (checked, ok) = demo(&["--check", "--data-dir", data_dir]);
    assert!(ok, "{checked:#}");
    assert_eq!(checked["violations"], Value::Array(vec![]), "{checked:#}");
    assert_eq!(checked["completed"], report["completed"], "{checked:#}");
    assert_eq!(checked["duplicates_deduped"], report["duplicates_deduped"]);

    // Take one unit of stock out of thin air, and refund a confirmed order behind the
    // saga's back: the check must name both.
    let inventory = rusqlite::Connection::open(dir.path().join("inventory.db")).unwrap();
    inventory
        .execute(
            "UPDATE stock SET available = available - 1 WHERE sku = 'widget'",
            [],
        )
        .unwrap();
    let payments = rusqlite::Connection::open(dir.path().join("payments.db")).unwrap();
    let refunded: String = payments
        .query_row(
            "UPDATE charges SET refunded_cents = amount_cents \
             WHERE saga_id = (SELECT saga_id FROM charges WHERE refunded_cents = 0 LIMIT 1) \
             RETURNING order_id",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let (tampered, ok) = demo(&["--check", "--data-dir", data_dir]);
    assert!(!ok, "a violated invariant exits non-zero: {tampered:#}");
    let violations = tampered["violations"].as_array().unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v["order"].is_null() && v["message"].as_str().unwrap().contains("widget")),
        "{tampered:#}"
    );
    assert!(
        violations.iter().any(|v| v["order"] == refunded.as_str()),
        "the refunded order {refunded} is named: {tampered:#}"
    );
}
