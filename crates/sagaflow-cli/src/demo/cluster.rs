//! The demo's processes on loopback: the coordinator (`sagaflow server`) and the four shop
//! services (this same binary, re-executed as `sagaflow shop-service <name>`), each on a port
//! picked at start. The coordinator can be killed with SIGKILL and started again on the same
//! port and journal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sagaflow_shop::Service;
use sagaflow_shop::chaos::Injected;
use sagaflow_shop::saga::Endpoints;

use super::children::{ChildProcess, StopBy, free_port};
use super::manifest::{Layout, Manifest};
use crate::error::Error;

/// How long a process may take to answer its health check after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two looks at a starting process.
const READY_POLL: Duration = Duration::from_millis(25);
/// One health-check request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a process may take to stop gracefully before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The services' fault injection (see `sagaflow_shop::chaos`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Share of deliveries answered 503 before anything is done.
    pub fail_rate: f64,
    /// Share of deliveries committed, then answered 503.
    pub lost_answer_rate: f64,
    /// Share of deliveries answered late.
    pub slow_rate: f64,
    /// How late.
    pub slow_ms: u64,
    /// The seed; each service draws from its own stream of it.
    pub seed: u64,
}

struct ServiceProcess {
    child: ChildProcess,
    url: String,
}

/// The running coordinator and services; dropping it kills them all.
pub struct Cluster {
    exe: PathBuf,
    coordinator: ChildProcess,
    coordinator_args: Vec<String>,
    coordinator_log: PathBuf,
    coordinator_url: String,
    services: Vec<ServiceProcess>,
    endpoints: Endpoints,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts every process, and returns once each one answers its health check.
    pub async fn start(
        layout: &Layout,
        manifest: &Manifest,
        faults: &Faults,
    ) -> Result<Cluster, Error> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::Other(format!("cannot find the sagaflow binary: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;
        let logs = layout.logs_dir();

        let mut services = Vec::with_capacity(Service::ALL.len());
        let mut endpoints = Endpoints {
            orders: String::new(),
            inventory: String::new(),
            payments: String::new(),
            shipping: String::new(),
        };
        for (i, service) in Service::ALL.into_iter().enumerate() {
            let addr = format!("127.0.0.1:{}", free_port()?);
            let store = manifest.store(service)?;
            // Distinct, reproducible streams: the golden-ratio increment of splitmix64.
            let seed = faults
                .seed
                .wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut args = vec![
                "shop-service".to_owned(),
                service.name().to_owned(),
                "--listen".to_owned(),
                addr.clone(),
                "--db".to_owned(),
                store.db.clone(),
                "--fail-rate".to_owned(),
                faults.fail_rate.to_string(),
                "--lost-answer-rate".to_owned(),
                faults.lost_answer_rate.to_string(),
                "--slow-rate".to_owned(),
                faults.slow_rate.to_string(),
                "--slow-ms".to_owned(),
                faults.slow_ms.to_string(),
                "--seed".to_owned(),
                seed.to_string(),
                "--log-level".to_owned(),
                "warn".to_owned(),
                "--stop-with-stdin".to_owned(),
            ];
            if let Some(schema) = &store.pg_schema {
                args.extend(["--pg-schema".to_owned(), schema.clone()]);
            }
            let log = logs.join(format!("{service}.log"));
            let child = ChildProcess::spawn(service.name(), &exe, &args, &log, StopBy::CloseStdin)?;
            let url = format!("http://{addr}");
            *match service {
                Service::Orders => &mut endpoints.orders,
                Service::Inventory => &mut endpoints.inventory,
                Service::Payments => &mut endpoints.payments,
                Service::Shipping => &mut endpoints.shipping,
            } = url.clone();
            services.push(ServiceProcess { child, url });
        }

        let addr = format!("127.0.0.1:{}", free_port()?);
        let data_dir = layout.coordinator_dir();
        let data_dir = data_dir
            .to_str()
            .ok_or_else(|| Error::Input(format!("{} is not valid UTF-8", data_dir.display())))?;
        let coordinator_args = vec![
            "server".to_owned(),
            "--listen".to_owned(),
            addr.clone(),
            "--data-dir".to_owned(),
            data_dir.to_owned(),
            "--log-level".to_owned(),
            "warn".to_owned(),
        ];
        let coordinator_log = logs.join("coordinator.log");
        let coordinator = ChildProcess::spawn(
            "coordinator",
            &exe,
            &coordinator_args,
            &coordinator_log,
            StopBy::Terminate,
        )?;
        let mut cluster = Cluster {
            exe,
            coordinator,
            coordinator_args,
            coordinator_log,
            coordinator_url: format!("http://{addr}"),
            services,
            endpoints,
            http,
        };
        for i in 0..cluster.services.len() {
            let url = format!("{}/healthz", cluster.services[i].url);
            wait_ready(&cluster.http, &mut cluster.services[i].child, &url).await?;
        }
        cluster.wait_coordinator().await?;
        Ok(cluster)
    }

    /// The coordinator's base URL.
    pub fn coordinator_url(&self) -> &str {
        &self.coordinator_url
    }

    /// The services' base URLs.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    async fn wait_coordinator(&mut self) -> Result<(), Error> {
        let url = format!("{}/readyz", self.coordinator_url);
        wait_ready(&self.http, &mut self.coordinator, &url).await
    }

    /// `kill -9` the coordinator, leave it dead for `down`, start it again on the same port
    /// and journal, and wait until it is ready (recovery done).
    pub async fn restart_coordinator(&mut self, down: Duration) -> Result<(), Error> {
        tracing::info!(down_ms = down.as_millis() as u64, "killing the coordinator");
        self.coordinator.kill_9();
        tokio::time::sleep(down).await;
        self.coordinator = ChildProcess::spawn(
            "coordinator",
            &self.exe,
            &self.coordinator_args,
            &self.coordinator_log,
            StopBy::Terminate,
        )?;
        self.wait_coordinator().await
    }

    /// The faults the services injected, summed (their own count, over HTTP: only for the
    /// report, never for the check).
    pub async fn injected(&self) -> Injected {
        let mut sum = Injected::default();
        for s in &self.services {
            let answer = self.http.get(format!("{}/chaos", s.url)).send().await;
            let injected = match answer {
                Ok(response) => response.json::<Injected>().await.ok(),
                Err(_) => None,
            };
            if let Some(i) = injected {
                sum.failures += i.failures;
                sum.lost_answers += i.lost_answers;
                sum.slow += i.slow;
            }
        }
        sum
    }

    /// Stops everything gracefully: the coordinator first, so it calls no stopped service.
    pub async fn stop(mut self) {
        self.coordinator.stop(STOP_GRACE).await;
        for s in &mut self.services {
            s.child.stop(STOP_GRACE).await;
        }
    }
}

/// Polls `url` until it answers 2xx; fails early when the process exits.
async fn wait_ready(
    http: &reqwest::Client,
    child: &mut ChildProcess,
    url: &str,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.exited() {
            return Err(Error::Other(format!(
                "{} exited at start ({status}); see {}",
                child.name(),
                child.log().display()
            )));
        }
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(Error::Other(format!(
                "{} did not become ready in {} s; see {}",
                child.name(),
                READY_TIMEOUT.as_secs(),
                child.log().display()
            )));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}
