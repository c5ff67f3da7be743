//! `sagaflow bench`'s long scenarios, run tiny: the soak (memory over many sagas), the
//! restart with finished and unfinished sagas in the journal, and a load compared with
//! `direct` over several rounds. Each runs the real binary with
//! `--json` and checks that the report says what the scenario promises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .arg("bench")
        .arg("--json")
        .args(args)
        .output()
        .expect("running sagaflow bench");
    assert!(
        output.status.success(),
        "sagaflow bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn soak_completes_every_saga_and_reads_memory_after_each_tenth() {
    let report = bench(&["--soak", "2000", "-c", "16"]);
    assert_eq!(report["sagas"], 2000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let samples = report["samples"].as_array().unwrap();
    let at: Vec<u64> = samples
        .iter()
        .map(|s| s["sagas"].as_u64().unwrap())
        .collect();
    assert_eq!(at, (1..=10).map(|i| i * 200).collect::<Vec<_>>());
    assert!(samples.iter().all(|s| s["rss_mb"].as_f64().unwrap() > 0.0));
    let (min, max) = (
        report["rss_min_mb"].as_f64().unwrap(),
        report["rss_max_mb"].as_f64().unwrap(),
    );
    let spread = report["rss_spread"].as_f64().unwrap();
    assert!((spread - (max - min) / min).abs() < 1e-9, "{report}");
    assert_eq!(report["rss_warm_mb"], samples[0]["rss_mb"]);
}

#[test]
fn restart_bench_fills_finished_sagas_and_times_each_restart() {
    let report = bench(&["--restart-finished", "2000", "--restart-unfinished", "20"]);
    assert_eq!(report["finished"], 2000, "{report}");
    assert_eq!(report["unfinished"], 20, "{report}");
    // saga_started, then attempt_started and attempt_succeeded for each of 3 steps, then
    // saga_completed: the journal of a completed saga-3.
    assert_eq!(report["events_per_finished_saga"], 8.0, "{report}");
    let restarts = report["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 3, "{report}");
    for restart in restarts {
        let ready = restart["ready_s"].as_f64().unwrap();
        assert!(ready > 0.0 && ready <= restart["calls_resent_s"].as_f64().unwrap());
    }
    assert!(
        report["journal_bytes"].as_u64().unwrap() > 2000 * 1000,
        "{report}"
    );
}

#[test]
fn a_compared_run_alternates_direct_and_coordinator_rounds_and_reports_each() {
    let report = bench(&[
        "--compare-direct",
        "--rounds",
        "2",
        "-c",
        "4",
        "--warmup",
        "200ms",
        // Each round must finish sagas: long enough that a stall of the disk's (a sync that
        // waited ~0.5 s once, on a busy host) does not empty a round.
        "--duration",
        "1s",
    ]);
    assert_eq!(report["errors"], 0, "{report}");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{report}");
    let rate = |v: &Value| v.as_f64().unwrap();
    for round in rounds {
        assert!(rate(&round["sagas_per_s"]) > 0.0, "{report}");
        assert!(rate(&round["direct_sagas_per_s"]) > 0.0, "{report}");
        let ratio = rate(&round["sagas_per_s"]) / rate(&round["direct_sagas_per_s"]);
        assert!(
            (rate(&round["ratio_to_direct"]) - ratio).abs() < 1e-9,
            "{report}"
        );
    }
    // Equal windows: the run's rate is the rounds' mean, and its ratio that of its two rates.
    let mean = rounds.iter().map(|r| rate(&r["sagas_per_s"])).sum::<f64>() / 2.0;
    assert!(
        (rate(&report["sagas_per_s"]) - mean).abs() < 1e-6 * mean,
        "{report}"
    );
    let ratio = rate(&report["sagas_per_s"]) / rate(&report["direct_sagas_per_s"]);
    assert!(
        (rate(&report["ratio_to_direct"]) - ratio).abs() < 1e-9,
        "{report}"
    );
    assert!(rate(&report["cpu_s_per_saga"]) > 0.0, "{report}");
    // Where the CPU went: every process of each load, the coordinator's share being the
    // figure above, and the CPU ratio that of the two loads' sums.
    let total = |processes: &Value, names: &[&str]| -> f64 {
        let map = processes.as_object().unwrap();
        assert_eq!(map.len(), names.len(), "{report}");
        names
            .iter()
            .map(|name| {
                let share = &map[*name];
                // CPU time is read in ticks of 10 ms: a short window may see none of one.
                assert!(rate(&share["cpu_s_per_saga"]) >= 0.0, "{report}");
                assert!(rate(&share["switches_per_saga"]) > 0.0, "{report}");
                rate(&share["cpu_s_per_saga"])
            })
            .sum()
    };
    let run = total(
        &report["processes"],
        &["coordinator", "participant", "load_generator"],
    );
    let direct = total(
        &report["direct_processes"],
        &["participant", "load_generator"],
    );
    assert_eq!(
        report["processes"]["coordinator"]["cpu_s_per_saga"], report["cpu_s_per_saga"],
        "{report}"
    );
    assert!(
        (rate(&report["cpu_ratio_to_direct"]) - direct / run).abs() < 1e-9,
        "{report}"
    );
    assert!(rate(&report["wake_round_trip_us"]) > 0.0, "{report}");
    assert!(rate(&report["wake_round_trip_cpu_us"]) > 0.0, "{report}");
    // Where a saga's time went, from the coordinator's histograms: each a saga's part.
    for part in ["journal_write_ms_mean", "participant_call_ms_mean"] {
        let mean = rate(&report[part]);
        assert!(
            mean > 0.0 && mean < rate(&report["max_ms"]),
            "{part}: {report}"
        );
    }
}

#[test]
fn the_long_scenarios_refuse_nonsense() {
    for args in [
        &["--soak", "0"][..],
        &["--soak", "1000", "--parked", "10"],
        &["--restart-finished", "10", "--restart-unfinished", "0"],
        &["--restart-unfinished", "10"],
        &["--restart-finished", "10", "--soak", "100"],
        &["--rounds", "2"],
        &["--compare-direct", "--rounds", "0"],
        &["--compare-direct", "--rounds", "21"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sagaflow"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "sagaflow bench {args:?}");
    }
}
