//! The Sagaflow coordinator: a durable saga orchestrator behind an HTTP API.
//!
//! - [`run`]: opens the journal ([`open_store`]: embedded SQLite, or PostgreSQL), recovers
//!   unfinished sagas, serves the API until shutdown, then drains and flushes.
//! - `engine`: one task per live saga: `sagaflow_core::decide`, journal (write-ahead), call.
//!   The dispatcher makes participant calls and classifies their answers.
//! - `api`: the routes of `shared/API.md` ([`app`]), problem+json errors, OpenAPI.
//! - [`metrics`]: Prometheus metrics.
//! - [`config`]: settings and named limits.

pub mod api;
pub mod clock;
pub mod config;
pub mod engine;
mod loops;
pub use loops::EventLoop;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;

pub use api::app;
pub use config::{Config, Limits};
pub use engine::Engine;

use sagaflow_store::Store;
use sagaflow_store::postgres::{PgConfig, PgStore, redact_url};
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};

/// What stops the coordinator from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the journal in {dir}: {source}")]
    Store {
        dir: std::path::PathBuf,
        source: sagaflow_store::Error,
    },
    #[error("opening the journal at {store}: {source}")]
    OpenStore {
        /// The store's URL, without its password.
        store: String,
        source: sagaflow_store::Error,
    },
    #[error(
        "unknown store {0:?}: expected a postgres:// or postgresql:// URL \
         (or none, for the embedded journal in the data directory)"
    )]
    UnknownStore(String),
    #[error("recovering unfinished sagas: {0}")]
    Recovery(#[from] engine::EngineError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// Runs the coordinator on the journal `config.store` names until `shutdown` resolves, then
/// stops taking requests, lets in-flight calls answer (up to `shutdown_grace`), and flushes the
/// journal. `loops` are the other event loops connections are handed out to (see
/// [`serve_loops`]); with none, this loop serves every connection.
pub async fn run(
    config: Config,
    loops: Vec<tokio::runtime::Handle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    serve_loops(config, store, listener, loops, shutdown).await
}

/// Opens the journal `config.store` names: the embedded SQLite file in `data_dir` when it is
/// `None`, PostgreSQL for a `postgres://` or `postgresql://` URL (migrating it first).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, Error> {
    match config.store.as_deref() {
        None => {
            let store =
                SqliteStore::open(&config.data_dir, SqliteConfig::default()).map_err(|source| {
                    Error::Store {
                        dir: config.data_dir.clone(),
                        source,
                    }
                })?;
            Ok(Arc::new(store))
        }
        Some(url) if is_postgres_url(url) => {
            let store = PgStore::open(url, PgConfig::default())
                .await
                .map_err(|source| Error::OpenStore {
                    store: redact_url(url),
                    source,
                })?;
            tracing::info!(store = %redact_url(url), "journal on PostgreSQL");
            Ok(Arc::new(store))
        }
        Some(other) => Err(Error::UnknownStore(redact_url(other))),
    }
}

/// Applies the pending migrations of the PostgreSQL store at `url` (what `open_store` does
/// first), for operators who migrate before starting the coordinators.
pub async fn migrate_store(url: &str) -> Result<(), Error> {
    if !is_postgres_url(url) {
        return Err(Error::UnknownStore(redact_url(url)));
    }
    PgStore::migrate(url)
        .await
        .map_err(|source| Error::OpenStore {
            store: redact_url(url),
            source,
        })
}

fn is_postgres_url(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    scheme
        .is_some_and(|s| s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql"))
}

/// Runs the coordinator on a given store and listener (tests and other backends use this).
pub async fn serve(
    config: Config,
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_loops(config, store, listener, Vec::new(), shutdown).await
}

/// As [`serve`], with connections handed out in turn to this event loop and to `loops`
/// (current-thread runtimes driven by threads of their own, which must keep running until this
/// returns: the sagas a loop started run on it while the coordinator drains). See `loops.rs`.
pub async fn serve_loops(
    config: Config,
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    loops: Vec<tokio::runtime::Handle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(metrics::Metrics::new());
    let engine = Engine::with_cluster(
        store,
        config.limits.clone(),
        config.cluster.clone(),
        metrics,
    );
    // This loop and the others: connections and resumed sagas are spread over them all.
    let loops: Vec<_> = if loops.is_empty() {
        loops
    } else {
        std::iter::once(tokio::runtime::Handle::current())
            .chain(loops)
            .collect()
    };
    engine.spread_resumed_over(loops.clone());
    // Every loop the engine runs on, this one alone when there are no others.
    let this = [tokio::runtime::Handle::current()];
    let _ticks = loops::TimerTicks::on(if loops.is_empty() { &this } else { &loops });
    let addr = listener.local_addr().map_err(Error::Serve)?;
    // A target of its own, so that a tool can ask for this line alone (`sagaflow bench` reads
    // the address from it when the port was left to the system).
    tracing::info!(
        target: "sagaflow_server::listening",
        %addr,
        data_dir = %config.data_dir.display(),
        "sagaflow listening"
    );
    let router = app(engine.clone());
    let draining = engine.clone();
    let shutdown = async move {
        shutdown.await;
        // First stop new work and end long polls, so the HTTP server can finish its requests.
        draining.begin_drain();
    };
    // Serve while recovering: /healthz answers at once and /readyz says when recovery is done.
    let server = tokio::spawn(async move {
        if loops.is_empty() {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        } else {
            loops::serve(listener, router, loops, shutdown).await
        }
    });
    let recovered = engine.recover().await;
    if let Err(e) = recovered {
        server.abort();
        return Err(Error::Recovery(e));
    }
    tracing::info!("ready");
    if let Some(retention) = config.retention {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run_retention(retention).await });
    }
    let served = server
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))?;
    tracing::info!("shutting down: draining in-flight calls");
    engine.shutdown(config.shutdown_grace).await;
    tracing::info!("journal flushed; bye");
    served.map_err(Error::Serve)
}
