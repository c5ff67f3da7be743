//! The load generator: closed loop (N clients) or open loop (a fixed arrival rate), against the
//! coordinator or, for the baseline, straight against the participant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;

/// Requests an open loop may have outstanding; above it a saga counts as an error (the system
/// is not keeping up, and an unbounded backlog would only hide it).
const OPEN_LOOP_OUTSTANDING_MAX: usize = 50_000;
/// How long the coordinator may hold one saga's answer (`wait_ms`).
const WAIT_MS: u64 = 60_000;

/// One unit of work: a saga through the coordinator, or its calls made directly.
pub enum Op {
    Saga {
        http: reqwest::Client,
        url: String,
        body: String,
        expected: &'static str,
    },
    Direct {
        http: reqwest::Client,
        urls: Vec<String>,
        body: String,
    },
}

#[derive(Deserialize)]
struct SagaAnswer {
    status: String,
}

impl Op {
    pub fn saga(http: reqwest::Client, base: &str, definition: &str, expected: &'static str) -> Op {
        Op::Saga {
            http,
            url: format!("{base}/v1/sagas?wait_ms={WAIT_MS}"),
            body: serde_json::json!({"definition": definition, "input": {"bench": true}})
                .to_string(),
            expected,
        }
    }

    pub fn direct(http: reqwest::Client, urls: Vec<String>) -> Op {
        // The same body the coordinator sends, so the participant does the same work.
        let body = serde_json::json!({
            "saga_id": "00000000-0000-7000-8000-000000000000", "step": "step-1",
            "phase": "action", "attempt": 1, "input": {"bench": true}, "results": {}
        })
        .to_string();
        Op::Direct { http, urls, body }
    }

    async fn run_once(&self) -> Result<(), String> {
        match self {
            Op::Saga {
                http,
                url,
                body,
                expected,
            } => {
                let response = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                let answer: SagaAnswer =
                    serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                if answer.status != *expected {
                    return Err(format!("saga ended {}", answer.status));
                }
                Ok(())
            }
            Op::Direct { http, urls, body } => {
                for url in urls {
                    let response = http
                        .post(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    response.bytes().await.map_err(|e| e.to_string())?;
                    if !(status.is_success() || status.as_u16() == 422) {
                        return Err(format!("HTTP {status}"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Samples {
    /// Latencies of the sagas that ended inside the measured window, in microseconds.
    pub latencies_us: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
}

impl Samples {
    /// Adds a later window's samples to these: the rate is then over both windows.
    pub fn absorb(&mut self, other: Samples) {
        self.window += other.window;
        self.merge(other);
    }

    fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Sagas per second over the window.
    pub fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let index = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[index.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }
}

struct Window {
    measure_from: Instant,
    until: Instant,
    /// Open loop: a unit counts when it was due in the window, however late it ended (so the
    /// tail is never cut off). Closed loop: when it ended in the window.
    by_intended: bool,
}

impl Window {
    fn record(
        &self,
        samples: &mut Samples,
        intended: Instant,
        done: Instant,
        result: Result<(), String>,
    ) {
        let at = if self.by_intended { intended } else { done };
        if at < self.measure_from || at > self.until {
            return;
        }
        match result {
            Ok(()) => samples
                .latencies_us
                .push(done.duration_since(intended).as_micros() as u64),
            Err(e) => {
                samples.errors += 1;
                samples.first_error.get_or_insert(e);
            }
        }
    }
}

/// `concurrency` clients, each starting the next unit as soon as its last one ended.
pub async fn closed_loop(
    op: Arc<Op>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Samples {
    let start = Instant::now();
    let window = Arc::new(Window {
        measure_from: start + warmup,
        until: start + warmup + duration,
        by_intended: false,
    });
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let op = Arc::clone(&op);
        let window = Arc::clone(&window);
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < window.until {
                let began = Instant::now();
                let result = op.run_once().await;
                window.record(&mut samples, began, Instant::now(), result);
            }
            samples
        }));
    }
    let mut all = Samples {
        window: duration,
        ..Samples::default()
    };
    for task in tasks {
        if let Ok(samples) = task.await {
            all.merge(samples);
        }
    }
    all
}

/// `concurrency` clients, each starting the next unit as soon as its last one ended, until
/// `total` units were started; every unit counts. `on_success(k)` runs in the client that saw
/// the k-th success (the soak samples memory from it). The window is the whole run.
pub async fn closed_loop_count(
    op: Arc<Op>,
    concurrency: usize,
    total: u64,
    on_success: Arc<dyn Fn(u64) + Send + Sync>,
) -> Samples {
    let start = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let succeeded = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (op, issued, succeeded) =
            (Arc::clone(&op), Arc::clone(&issued), Arc::clone(&succeeded));
        let on_success = Arc::clone(&on_success);
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let began = Instant::now();
                match op.run_once().await {
                    Ok(()) => {
                        samples
                            .latencies_us
                            .push(began.elapsed().as_micros() as u64);
                        on_success(succeeded.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    Err(e) => {
                        samples.errors += 1;
                        samples.first_error.get_or_insert(e);
                    }
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        if let Ok(samples) = task.await {
            all.merge(samples);
        }
    }
    all.window = start.elapsed();
    all
}

/// A fixed arrival rate; each unit's latency counts from when it was due, so a stall shows.
pub async fn open_loop(op: Arc<Op>, rate: u64, warmup: Duration, duration: Duration) -> Samples {
    let start = Instant::now();
    let window = Arc::new(Window {
        measure_from: start + warmup,
        until: start + warmup + duration,
        by_intended: true,
    });
    let outstanding = Arc::new(Semaphore::new(OPEN_LOOP_OUTSTANDING_MAX));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Samples>();
    let mut all = Samples {
        window: duration,
        ..Samples::default()
    };
    let mut due = start;
    while due < window.until {
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        let Ok(permit) = Arc::clone(&outstanding).try_acquire_owned() else {
            all.errors += 1;
            all.first_error
                .get_or_insert_with(|| "too many sagas outstanding".into());
            due += interval;
            continue;
        };
        let op = Arc::clone(&op);
        let window = Arc::clone(&window);
        let tx = tx.clone();
        let intended = due;
        tokio::spawn(async move {
            let mut samples = Samples::default();
            let result = op.run_once().await;
            window.record(&mut samples, intended, Instant::now(), result);
            drop(permit);
            let _ = tx.send(samples);
        });
        due += interval;
    }
    drop(tx);
    // Every started unit reports; late ones fall outside the window and count for nothing.
    let drain = async {
        while let Some(samples) = rx.recv().await {
            all.merge(samples);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(70), drain).await;
    all
}
