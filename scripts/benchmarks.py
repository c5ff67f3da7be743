#!/usr/bin/env python3
"""Runs every `sagaflow bench` scenario of BENCHMARKS.md and writes the figures into it.

Usage: cargo build --release -p sagaflow-cli && python3 scripts/benchmarks.py [--quick]
       (with SAGAFLOW_BENCH_POSTGRES=postgres://…/scratch_db to include the PostgreSQL store)

The tables between the `<!-- figures:begin -->` and `<!-- figures:end -->` markers of
BENCHMARKS.md are generated from the JSON each run prints; nothing there is typed by hand.
Raw results go to benchmarks/results.json.

Each load scenario runs ROUNDS times in turn (the host's speed moves between runs); the main
table gives each figure's median over the rounds, and a second table every round's headline
figures, so that a target met in one round only shows as such. The ratio's scenario (saga-3 at
-c 64) also alternates `direct` and the coordinator inside each run (`--rounds`): on a host
whose speed drifts within a minute, a single `direct` load before the coordinator's moved the
ratio by a quarter between runs.
"""
import statistics
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sagaflow")
QUICK = "--quick" in sys.argv
ROUNDS = 1 if QUICK else 3

# (label, arguments)
SCENARIOS = [
    ("saga-3, -c 64", ["--workload", "saga-3", "-c", "64", "--compare-direct",
                       "--rounds", "2" if QUICK else "3", "--duration", "3s" if QUICK else "5s"]),
    ("saga-3, -c 1", ["--workload", "saga-3", "-c", "1", "--compare-direct"]),
    ("saga-3, -c 256", ["--workload", "saga-3", "-c", "256"]),
    ("saga-3-fail, -c 64", ["--workload", "saga-3-fail", "-c", "64", "--compare-direct"]),
    ("saga-10, -c 64", ["--workload", "saga-10", "-c", "64", "--compare-direct"]),
    ("saga-3, open loop 2,000/s", ["--workload", "saga-3", "--rate", "2000",
                                   "--duration", "20s" if QUICK else "60s"]),
]

# The PostgreSQL store, when a database is given (it is emptied first: use a scratch database).
POSTGRES = os.environ.get("SAGAFLOW_BENCH_POSTGRES")
if POSTGRES:
    SCENARIOS.append(("saga-3, -c 64, PostgreSQL store", ["--workload", "saga-3", "-c", "64", "--store", POSTGRES]))


def run(args):
    duration = [] if "--duration" in args else ["--duration", "5s" if QUICK else "10s"]
    command = [BIN, "bench", "--json", "--warmup", "2s" if QUICK else "3s"] + duration + args
    print("$", " ".join(["sagaflow"] + command[1:]), file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_result(rounds):
    """Each numeric figure's median over the rounds (the errors: their sum); others from the first."""
    merged = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
        merged[key] = sum(values) if key == "errors" else statistics.median(values)
    return merged


def rounds_table(all_rounds):
    lines = [
        "| scenario | sagas/s, each round | p50 ms | p99 ms | ratio to direct |",
        "|---|---|---|---|---|",
    ]
    each = lambda rounds, key, digits: " / ".join(fmt(r.get(key), digits) for r in rounds)
    for label, rounds in all_rounds:
        lines.append(
            f"| {label} | {each(rounds, 'sagas_per_s', 0)} | {each(rounds, 'p50_ms', 2)} "
            f"| {each(rounds, 'p99_ms', 2)} | {each(rounds, 'ratio_to_direct', 2)} |"
        )
    return "\n".join(lines)


def cpu_table(all_rounds):
    """Where the CPU goes: each process's CPU and context switches per saga, medians over the rounds."""
    lines = [
        "| scenario | coordinator µs/saga (switches) | participant | load generator | all µs/saga "
        "| direct: participant | direct: load generator | direct: all µs/saga | CPU ratio | sagas/s ratio "
        "| thread wake-up round trip µs (CPU µs) | coordinator's threads µs/saga |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def med(rounds, *path):
        values = []
        for r in rounds:
            value = r
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                values.append(value)
        return statistics.median(values) if values else None

    def share(rounds, group, name):
        cpu, switches = med(rounds, group, name, "cpu_s_per_saga"), med(rounds, group, name, "switches_per_saga")
        if cpu is None or switches is None:
            return "–"
        return f"{cpu * 1e6:,.0f} ({switches:.2f})"

    def total(rounds, group):
        sums = [sum(s["cpu_s_per_saga"] for s in r[group].values()) for r in rounds if r.get(group)]
        return fmt(statistics.median(sums) * 1e6) if sums else "–"

    def threads(rounds):
        names = sorted({name for r in rounds
                        for name in (r.get("processes") or {}).get("coordinator", {}).get("threads_cpu_s_per_saga", {})})
        parts = []
        for name in names:
            cpu = med(rounds, "processes", "coordinator", "threads_cpu_s_per_saga", name)
            if cpu is not None:
                parts.append(f"{name} {cpu * 1e6:,.1f}")
        return ", ".join(parts) if parts else "–"

    for label, rounds in all_rounds:
        if not any(r.get("processes") for r in rounds):
            continue
        wake, wake_cpu = med(rounds, "wake_round_trip_us"), med(rounds, "wake_round_trip_cpu_us")
        lines.append(
            f"| {label} | {share(rounds, 'processes', 'coordinator')} "
            f"| {share(rounds, 'processes', 'participant')} | {share(rounds, 'processes', 'load_generator')} "
            f"| {total(rounds, 'processes')} | {share(rounds, 'direct_processes', 'participant')} "
            f"| {share(rounds, 'direct_processes', 'load_generator')} | {total(rounds, 'direct_processes')} "
            f"| {fmt(med(rounds, 'cpu_ratio_to_direct'), 2)} | {fmt(med(rounds, 'ratio_to_direct'), 2)} "
            f"| {fmt(wake, 1)} ({fmt(wake_cpu, 1)}) | {threads(rounds)} |"
        )
    return "\n".join(lines)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def table(results):
    lines = [
        "| scenario | sagas/s | steps/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors "
        "| direct sagas/s | ratio | CPU ms/saga | RSS MB | journal B/saga | events/write "
        "| journal write ms, mean | participant call ms, mean | fsync p50 ms | machine idle % | steal % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results:
        cpu = r.get("cpu_s_per_saga")
        lines.append(
            f"| {label} | {fmt(r['sagas_per_s'])} | {fmt(r['steps_per_s'])} | {fmt(r['p50_ms'], 2)} "
            f"| {fmt(r['p90_ms'], 2)} | {fmt(r['p99_ms'], 2)} | {fmt(r['p999_ms'], 2)} | {fmt(r['max_ms'], 2)} "
            f"| {r['errors']} | {fmt(r.get('direct_sagas_per_s'))} | {fmt(r.get('ratio_to_direct'), 2)} "
            f"| {fmt(cpu * 1000 if cpu is not None else None, 3)} | {fmt(r.get('rss_peak_mb'), 1)} "
            f"| {fmt(r.get('journal_bytes_per_saga'))} | {fmt(r.get('events_per_durable_write'), 1)} "
            f"| {fmt(r.get('journal_write_ms_mean'), 3)} | {fmt(r.get('participant_call_ms_mean'), 3)} "
            f"| {fmt(r.get('fsync_p50_ms'), 3)} | {fmt(r.get('machine_idle_pct'), 1)} "
            f"| {fmt(r.get('machine_steal_pct'), 1)} |"
        )
    return "\n".join(lines)


PARKED = 10_000
# The soak (memory over many sagas) dominates the script's run time: ~4 minutes at 5,000/s.
SOAK = 100_000 if QUICK else 1_000_000
# The restart scenario: finished sagas written into the journal, unfinished ones parked.
RESTART_FINISHED = 100_000 if QUICK else 1_000_000
RESTART_UNFINISHED = 10_000


def parked_table(r):
    return (
        "| sagas parked on a slow step | RSS idle MB | RSS parked MB | KB per parked saga "
        "| restart to /readyz s | journal bytes |\n|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['parked']:,} | {r['rss_idle_mb']:.1f} | {r['rss_parked_mb']:.1f} "
        f"| {r['rss_per_parked_saga_kb']:.1f} | {r['restart_ready_s']:.2f} | {r['journal_bytes']:,} |"
    )


def soak_table(r):
    samples = r["samples"]
    head = "| sagas completed | " + " | ".join(f"{s['sagas']:,}" for s in samples) + " |"
    rule = "|---|" + "---:|" * len(samples)
    rss = "| RSS MB | " + " | ".join(f"{s['rss_mb']:.1f}" for s in samples) + " |"
    at = "| at s | " + " | ".join(f"{s['elapsed_s']:.0f}" for s in samples) + " |"
    summary = (
        "| soak | sagas | errors | sagas/s | p99 ms | max ms | RSS idle MB | RSS warm MB (first 10 %) "
        "| RSS min–max MB | RSS last MB | spread (max−min)/min | journal bytes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['workload']}, -c {r['concurrency']} | {r['sagas']:,} | {r['errors']} | {r['sagas_per_s']:,.0f} "
        f"| {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['rss_idle_mb']:.1f} | {r['rss_warm_mb']:.1f} "
        f"| {r['rss_min_mb']:.1f}–{r['rss_max_mb']:.1f} | {r['rss_last_mb']:.1f} "
        f"| {r['rss_spread'] * 100:.1f} % | {r['journal_bytes']:,} |"
    )
    return summary + "\n\n" + "\n".join([head, rule, rss, at])


def restart_table(r):
    runs = " / ".join(f"{x['ready_s']:.2f}" for x in r["restarts"])
    resent = " / ".join(f"{x['calls_resent_s']:.2f}" for x in r["restarts"])
    return (
        "| finished sagas in the journal | unfinished | fill s | first start to /readyz s "
        "| restart to /readyz s (median) | each restart s | calls re-sent s (median) | each restart s "
        "| journal bytes |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['finished']:,} | {r['unfinished']:,} | {r['fill_s']:.1f} | {r['first_ready_s']:.2f} "
        f"| {r['restart_ready_s']:.2f} | {runs} | {r['calls_resent_s']:.2f} | {resent} | {r['journal_bytes']:,} |"
    )


def run_json(args):
    command = [BIN, "bench", "--json"] + args
    print("$", " ".join(["sagaflow"] + command[1:]), file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    # Round by round, so that a slow spell of the host spreads over the scenarios.
    all_rounds = [(label, []) for label, _ in SCENARIOS]
    for _ in range(ROUNDS):
        for (label, args), (_, rounds) in zip(SCENARIOS, all_rounds):
            rounds.append(run(args))
    results = [(label, median_result(rounds)) for label, rounds in all_rounds]
    parked = run_json(["--parked", str(PARKED)])
    soak = run_json(["--soak", str(SOAK), "--workload", "saga-3", "-c", "64"])
    restart = run_json(["--restart-finished", str(RESTART_FINISHED),
                        "--restart-unfinished", str(RESTART_UNFINISHED)])
    os.makedirs(os.path.join(ROOT, "benchmarks"), exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with open(os.path.join(ROOT, "benchmarks", "results.json"), "w") as f:
        json.dump({"when": stamp, "machine": machine(), "quick": QUICK,
                   "rounds": ROUNDS,
                   "results": [{"scenario": l, **r} for l, r in results],
                   "each_round": [{"scenario": l, "rounds": rs} for l, rs in all_rounds],
                   "parked": parked,
                   "soak": soak, "restart": restart}, f, indent=2)
        f.write("\n")
    block = (f"<!-- figures:begin -->\nMeasured {stamp} on {machine()}"
             f"{' (quick run: shorter windows)' if QUICK else ''}; "
             f"{'one round' if ROUNDS == 1 else f'medians of {ROUNDS} rounds'} per load scenario.\n\n"
             f"{table(results)}\n\n{rounds_table(all_rounds)}\n\n{cpu_table(all_rounds)}\n\n"
             f"{parked_table(parked)}\n\n"
             f"{soak_table(soak)}\n\n{restart_table(restart)}\n<!-- figures:end -->")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    begin, end = text.index("<!-- figures:begin -->"), text.index("<!-- figures:end -->")
    text = text[:begin] + block + text[end + len("<!-- figures:end -->"):]
    with open(path, "w") as f:
        f.write(text)
    print(table(results))
    print(rounds_table(all_rounds))
    print(cpu_table(all_rounds))
    print(soak_table(soak))
    print(restart_table(restart))


if __name__ == "__main__":
    main()
