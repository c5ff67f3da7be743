//! One demo run from start to report, and `--check` on an earlier run's data directory.

use std::time::{Duration, Instant};

use sagaflow::Client;
use sagaflow_shop::check::{SagaRow, check};
use sagaflow_shop::saga::place_order;
use sagaflow_shop::workload;
use tokio::sync::watch;

use super::args::DemoArgs;
use super::chaos::{default_restarts, kill_and_restart, kill_points};
use super::cluster::{Cluster, Faults};
use super::manifest::{Layout, Manifest};
use super::report::{Report, percentile_ms};
use super::verify::{sagas_from_coordinator, sagas_from_journal, snapshot};
use super::workload::{Progress, is_terminal, place_all};
use crate::error::Error;

/// Largest workload.
const ORDERS_MAX: usize = 1_000_000;
/// Most orders in flight at once.
const CONCURRENCY_MAX: usize = 1_024;
/// Most coordinator restarts asked for.
const RESTARTS_MAX: u32 = 100;

/// Starts everything, runs the workload, checks the invariants, stops everything.
pub async fn demo(args: &DemoArgs, show_progress: bool) -> Result<Report, Error> {
    if args.orders == 0 || args.orders > ORDERS_MAX {
        return Err(Error::Input(format!("--orders must be 1 to {ORDERS_MAX}")));
    }
    let concurrency = usize::from(args.concurrency);
    if concurrency > CONCURRENCY_MAX {
        return Err(Error::Input(format!(
            "--concurrency must be at most {CONCURRENCY_MAX}"
        )));
    }
    let restarts = args
        .restarts
        .unwrap_or_else(|| default_restarts(args.orders));
    if restarts > RESTARTS_MAX {
        return Err(Error::Input(format!(
            "--restarts must be at most {RESTARTS_MAX}"
        )));
    }

    // A temporary directory is removed when `temporary` is dropped, whatever happens.
    let temporary = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("sagaflow-demo-")
                .tempdir()
                .map_err(|e| Error::Other(format!("cannot create a temporary directory: {e}")))?,
        ),
    };
    let root = match (&args.data_dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => return Err(Error::Other("no data directory".into())),
    };
    let layout = Layout::new(&root);
    layout.create()?;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let payments = args.payments_store.as_deref();
    let all = args.store_all.as_deref();
    let mut manifest = match Manifest::load(&layout)? {
        Some(earlier) => {
            let wanted = Manifest::new(&layout, &earlier.store_id, payments, all)?;
            if wanted.stores != earlier.stores {
                return Err(Error::Input(format!(
                    "{} holds an earlier run with other stores; use a fresh --data-dir",
                    root.display()
                )));
            }
            earlier
        }
        None => Manifest::new(&layout, &run_id, payments, all)?,
    };
    let planned = workload::orders(args.seed, args.orders, &format!("o{run_id}"));
    manifest
        .orders
        .extend(planned.iter().map(|p| p.input.order_id.clone()));
    manifest.save(&layout)?;
    if show_progress {
        eprintln!(
            "sagaflow demo: {} orders, {concurrency} at a time{}; data in {}",
            args.orders,
            if args.chaos {
                format!(", the coordinator killed {restarts} times")
            } else {
                String::new()
            },
            root.display()
        );
    }

    let result = exercise(args, &layout, &manifest, &planned, restarts, show_progress).await;
    if temporary.is_some() {
        drop_schemas(&manifest).await;
    }
    result
}

/// The run proper: start the processes, place the orders (killing the coordinator on the
/// way with `--chaos`), then check. Every process is stopped when this returns, even early.
async fn exercise(
    args: &DemoArgs,
    layout: &Layout,
    manifest: &Manifest,
    planned: &[workload::PlannedOrder],
    restarts: u32,
    show_progress: bool,
) -> Result<Report, Error> {
    let concurrency = usize::from(args.concurrency);
    let faults = Faults {
        fail_rate: args.fail_rate,
        lost_answer_rate: args.lost_answer_rate,
        slow_rate: args.slow_rate,
        slow_ms: args.slow_ms,
        seed: args.seed,
    };
    let mut cluster = Cluster::start(layout, manifest, &faults).await?;
    let client = Client::new(cluster.coordinator_url())?;
    client
        .apply_definition(&place_order(cluster.endpoints()))
        .await?;

    let progress = Progress::new(args.orders, show_progress);
    let (started, started_rx) = watch::channel(0);
    let points = if args.chaos {
        kill_points(args.orders, restarts)
    } else {
        Vec::new()
    };
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.deadline_secs);
    let (placed, restarted) = tokio::join!(
        place_all(&client, planned, concurrency, deadline, &progress, started),
        kill_and_restart(&mut cluster, started_rx, &points, args.seed, &progress),
    );
    let elapsed = began.elapsed();
    progress.clear();
    let restarted = restarted?;

    // The check: the coordinator's sagas while it runs, then every database once the
    // services have stopped (so nothing can change under the read).
    let sagas = sagas_from_coordinator(&client).await?;
    let injected = cluster.injected().await;
    cluster.stop().await;
    let shop = snapshot(manifest).await?;
    let rows: Vec<SagaRow> = sagas.iter().map(|s| s.row.clone()).collect();
    let violations = check(&shop, &rows, &manifest.orders);

    let this_run: std::collections::HashSet<&str> =
        planned.iter().map(|p| p.input.order_id.as_str()).collect();
    let retries = sagas
        .iter()
        .filter(|s| {
            s.row
                .order_id
                .as_deref()
                .is_some_and(|o| this_run.contains(o))
        })
        .map(|s| s.retries)
        .sum();
    let count = |status: &str| {
        placed
            .iter()
            .filter(|p| p.status.as_deref() == Some(status) && p.latency.is_some())
            .count()
    };
    let latencies: Vec<Duration> = placed.iter().filter_map(|p| p.latency).collect();
    let seconds = elapsed.as_secs_f64();
    let report = Report {
        orders: args.orders,
        completed: count("completed"),
        compensated: count("compensated"),
        failed: count("failed"),
        non_terminal: placed
            .iter()
            .filter(|p| !p.status.as_deref().is_some_and(is_terminal))
            .count(),
        retries: Some(retries),
        duplicates_deduped: shop.duplicates,
        coordinator_restarts: restarted,
        throughput_per_s: (seconds > 0.0).then(|| round_1(args.orders as f64 / seconds)),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        elapsed_s: Some(round_1(seconds)),
        injected: Some(injected),
        stores: describe_stores(manifest),
        data_dir: args.data_dir.as_ref().map(|d| d.display().to_string()),
        seed: Some(args.seed),
        violations,
    };
    for p in &placed {
        if let Some(error) = &p.error {
            tracing::warn!(order = %p.order_id, error, "order not terminal");
        }
    }
    Ok(report)
}

/// Reads an earlier run's data directory: its databases and the coordinator's journal (the
/// coordinator must not be running on it).
pub async fn check_only(args: &DemoArgs) -> Result<Report, Error> {
    let root = args.data_dir.as_ref().ok_or_else(|| {
        Error::Input("--check needs --data-dir DIR, the data directory of an earlier run".into())
    })?;
    let layout = Layout::new(root);
    let manifest = Manifest::load(&layout)?.ok_or_else(|| {
        Error::Input(format!(
            "{} holds no demo run (no demo.json)",
            root.display()
        ))
    })?;
    let sagas = sagas_from_journal(&layout.coordinator_dir()).await?;
    let shop = snapshot(&manifest).await?;
    let violations = check(&shop, &sagas, &manifest.orders);
    let status_of = |order: &str| {
        sagas
            .iter()
            .find(|s| s.order_id.as_deref() == Some(order))
            .map(|s| s.status.as_str())
    };
    let count = |status: &str| {
        manifest
            .orders
            .iter()
            .filter(|o| status_of(o) == Some(status))
            .count()
    };
    Ok(Report {
        orders: manifest.orders.len(),
        completed: count("completed"),
        compensated: count("compensated"),
        failed: count("failed"),
        non_terminal: manifest
            .orders
            .iter()
            .filter(|o| !status_of(o).is_some_and(is_terminal))
            .count(),
        duplicates_deduped: shop.duplicates,
        stores: describe_stores(&manifest),
        data_dir: Some(root.display().to_string()),
        violations,
        ..Report::default()
    })
}

fn describe_stores(
    manifest: &Manifest,
) -> std::collections::BTreeMap<sagaflow_shop::Service, String> {
    manifest
        .stores
        .iter()
        .map(|(service, store)| {
            let shown = store
                .target()
                .map(|t| t.describe())
                .unwrap_or_else(|e| e.to_string());
            (*service, shown)
        })
        .collect()
}

/// A temporary run's PostgreSQL schemas go with its directory.
async fn drop_schemas(manifest: &Manifest) {
    for store in manifest.stores.values() {
        if let Some((url, schema)) = store.pg()
            && let Err(e) = sagaflow_shop::drop_pg_schema(url, schema).await
        {
            tracing::warn!(schema, error = %e, "cannot drop the demo's schema");
        }
    }
}

fn round_1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
