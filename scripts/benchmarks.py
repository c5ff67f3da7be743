#!/usr/bin/env python3
"""Runs every `sagaflow bench` scenario of BENCHMARKS.md and writes the figures into it.

Usage: cargo build --release -p sagaflow-cli && python3 scripts/benchmarks.py [--quick]
       (with SAGAFLOW_BENCH_POSTGRES=postgres://…/scratch_db to include the PostgreSQL store)

The tables between the `<!-- figures:begin -->` and `<!-- figures:end -->` markers of
BENCHMARKS.md are generated from the JSON each run prints; nothing there is typed by hand.
Raw results go to benchmarks/results.json.
"""
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sagaflow")
QUICK = "--quick" in sys.argv

# (label, arguments)
SCENARIOS = [
    ("saga-3, -c 64", ["--workload", "saga-3", "-c", "64", "--compare-direct"]),
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
        "| direct sagas/s | ratio | CPU ms/saga | RSS MB | journal B/saga | events/write |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results:
        cpu = r.get("cpu_s_per_saga")
        lines.append(
            f"| {label} | {fmt(r['sagas_per_s'])} | {fmt(r['steps_per_s'])} | {fmt(r['p50_ms'], 2)} "
            f"| {fmt(r['p90_ms'], 2)} | {fmt(r['p99_ms'], 2)} | {fmt(r['p999_ms'], 2)} | {fmt(r['max_ms'], 2)} "
            f"| {r['errors']} | {fmt(r.get('direct_sagas_per_s'))} | {fmt(r.get('ratio_to_direct'), 2)} "
            f"| {fmt(cpu * 1000 if cpu is not None else None, 3)} | {fmt(r.get('rss_peak_mb'), 1)} "
            f"| {fmt(r.get('journal_bytes_per_saga'))} | {fmt(r.get('events_per_durable_write'), 1)} |"
        )
    return "\n".join(lines)


PARKED = 10_000


def parked_table(r):
    return (
        "| sagas parked on a slow step | RSS idle MB | RSS parked MB | KB per parked saga "
        "| restart to /readyz s | journal bytes |\n|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['parked']:,} | {r['rss_idle_mb']:.1f} | {r['rss_parked_mb']:.1f} "
        f"| {r['rss_per_parked_saga_kb']:.1f} | {r['restart_ready_s']:.2f} | {r['journal_bytes']:,} |"
    )


def main():
    results = [(label, run(args)) for label, args in SCENARIOS]
    print("$ sagaflow bench --json --parked", PARKED, file=sys.stderr, flush=True)
    parked = json.loads(subprocess.run([BIN, "bench", "--json", "--parked", str(PARKED)],
                                       check=True, capture_output=True, text=True).stdout.strip())
    os.makedirs(os.path.join(ROOT, "benchmarks"), exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with open(os.path.join(ROOT, "benchmarks", "results.json"), "w") as f:
        json.dump({"when": stamp, "machine": machine(), "quick": QUICK,
                   "results": [{"scenario": l, **r} for l, r in results], "parked": parked}, f, indent=2)
        f.write("\n")
    block = (f"<!-- figures:begin -->\nMeasured {stamp} on {machine()}"
             f"{' (quick run: shorter windows)' if QUICK else ''}.\n\n{table(results)}\n\n{parked_table(parked)}\n<!-- figures:end -->")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    begin, end = text.index("<!-- figures:begin -->"), text.index("<!-- figures:end -->")
    text = text[:begin] + block + text[end + len("<!-- figures:end -->"):]
    with open(path, "w") as f:
        f.write(text)
    print(table(results))


if __name__ == "__main__":
    main()
