//! `sagaflow demo`'s flags, and the hidden `sagaflow shop-service`'s.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::Args;

/// Orders in flight at once unless told.
const CONCURRENCY_DEFAULT: NonZeroUsize = NonZeroUsize::new(16).expect("16 is not zero");

/// `sagaflow demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders in the workload.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub orders: usize,

    /// Orders in flight at once.
    #[arg(long, default_value_t = CONCURRENCY_DEFAULT, value_name = "N")]
    pub concurrency: NonZeroUsize,

    /// Kill the coordinator with SIGKILL and restart it while orders are in flight.
    #[arg(long)]
    pub chaos: bool,

    /// With --chaos: how many times (one per 100 orders when left out, 1 to 5).
    #[arg(long, value_name = "N")]
    pub restarts: Option<u32>,

    /// Print the report as one JSON object (and no progress bar).
    #[arg(long)]
    pub json: bool,

    /// Only check the invariants of an earlier run in --data-dir (its processes stopped).
    #[arg(long, requires = "data_dir")]
    pub check: bool,

    /// Where the journal, the services' databases, the logs and demo.json live; a temporary
    /// directory, removed at the end, when left out.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Put the payments service on PostgreSQL (in a fresh schema of its own).
    #[arg(long, value_name = "POSTGRES_URL")]
    pub payments_store: Option<String>,

    /// Put every service on PostgreSQL (each in a fresh schema of its own).
    #[arg(long, value_name = "POSTGRES_URL")]
    pub store_all: Option<String>,

    /// Seed of the workload's mix and of the injected faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Share of deliveries each service answers 503 before doing anything.
    #[arg(long, default_value_t = 0.05, value_parser = rate, value_name = "F")]
    pub fail_rate: f64,

    /// Share of deliveries each service commits, then answers 503 (lost answers).
    #[arg(long, default_value_t = 0.05, value_parser = rate, value_name = "F")]
    pub lost_answer_rate: f64,

    /// Share of deliveries each service answers late.
    #[arg(long, default_value_t = 0.05, value_parser = rate, value_name = "F")]
    pub slow_rate: f64,

    /// How late a slow answer is.
    #[arg(long, default_value_t = 150, value_name = "MS")]
    pub slow_ms: u64,

    /// How long to wait for every order to end, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub deadline_secs: u64,
}

/// A probability: 0 to 1.
fn rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

/// `sagaflow shop-service`.
#[derive(Debug, Args)]
pub struct ShopServiceArgs {
    /// Which service.
    #[arg(value_enum)]
    pub service: sagaflow_shop::Service,

    #[command(flatten)]
    pub args: sagaflow_shop::ServiceArgs,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn demo(argv: &[&str]) -> Result<super::DemoArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("sagaflow").chain(argv.iter().copied()))?;
        match cli.command {
            Command::Demo(args) => Ok(*args),
            other => panic!("expected the demo command, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_a_few_hundred_orders_sixteen_at_a_time() {
        let args = demo(&["demo"]).expect("parses");
        assert_eq!((args.orders, usize::from(args.concurrency)), (300, 16));
        assert!(!args.chaos && !args.json && !args.check);
        assert_eq!(args.data_dir, None);
    }

    #[test]
    fn check_needs_a_data_directory_and_rates_are_probabilities() {
        assert!(demo(&["demo", "--check"]).is_err());
        assert!(demo(&["demo", "--check", "--data-dir", "/tmp/x"]).is_ok());
        assert!(demo(&["demo", "--fail-rate", "1.5"]).is_err());
        assert!(demo(&["demo", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn the_shop_service_command_is_hidden_but_parses() {
        let cli = Cli::try_parse_from([
            "sagaflow",
            "shop-service",
            "payments",
            "--listen",
            "127.0.0.1:9",
            "--db",
            "p.db",
        ])
        .expect("parses");
        assert!(matches!(cli.command, Command::ShopService(_)));
    }
}
