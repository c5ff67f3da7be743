//! `--chaos`: the coordinator is killed with SIGKILL and started again while orders are in
//! flight, at points spread over the workload.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::cluster::Cluster;
use super::workload::Progress;
use crate::error::Error;

/// Most restarts chosen by default, however large the workload.
const RESTARTS_DEFAULT_MAX: u32 = 5;
/// Orders per default restart.
const ORDERS_PER_RESTART: usize = 100;
/// How long the coordinator stays dead, at least and at most.
const DOWN_MS_MIN: u64 = 100;
const DOWN_MS_MAX: u64 = 600;

/// How many restarts a workload of `orders` gets unless told: one per hundred orders, at
/// least one, at most `RESTARTS_DEFAULT_MAX`.
pub fn default_restarts(orders: usize) -> u32 {
    let per = orders / ORDERS_PER_RESTART;
    u32::try_from(per)
        .unwrap_or(RESTARTS_DEFAULT_MAX)
        .clamp(1, RESTARTS_DEFAULT_MAX)
}

/// When to kill: after how many orders have been accepted, evenly spread.
pub fn kill_points(orders: usize, restarts: u32) -> Vec<usize> {
    let k = restarts as usize;
    (1..=k).map(|i| (orders * i / (k + 1)).max(1)).collect()
}

/// Kills and restarts the coordinator at each point of `points` that the count of accepted
/// orders reaches; stops early when the workload ends (its sender is dropped). Returns how
/// many restarts were done.
pub async fn kill_and_restart(
    cluster: &mut Cluster,
    mut started: watch::Receiver<usize>,
    points: &[usize],
    seed: u64,
    progress: &Progress,
) -> Result<u32, Error> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut restarts = 0;
    for &point in points {
        if started.wait_for(|n| *n >= point).await.is_err() {
            break;
        }
        let down = Duration::from_millis(rng.random_range(DOWN_MS_MIN..=DOWN_MS_MAX));
        cluster.restart_coordinator(down).await?;
        restarts += 1;
        progress.restarted();
    }
    Ok(restarts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_grow_with_the_workload_within_bounds() {
        assert_eq!(default_restarts(1), 1);
        assert_eq!(default_restarts(60), 1);
        assert_eq!(default_restarts(300), 3);
        assert_eq!(default_restarts(1_000_000), RESTARTS_DEFAULT_MAX);
    }

    #[test]
    fn kill_points_are_spread_over_the_workload() {
        assert_eq!(kill_points(300, 3), vec![75, 150, 225]);
        assert_eq!(kill_points(60, 1), vec![30]);
        assert_eq!(kill_points(1, 2), vec![1, 1]);
    }
}
