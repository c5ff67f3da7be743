//! The Sagaflow coordinator: a durable saga orchestrator behind an HTTP API.
//!
//! - [`run`]: opens the journal, recovers unfinished sagas, serves the API until shutdown,
//!   then drains and flushes.
//! - `engine`: one task per live saga: `sagaflow_core::decide`, journal (write-ahead), call.
//!   The dispatcher makes participant calls and classifies their answers.
//! - `api`: the routes of `shared/API.md` ([`app`]), problem+json errors, OpenAPI.
//! - [`metrics`]: Prometheus metrics.
//! - [`config`]: settings and named limits.

pub mod api;
pub mod clock;
pub mod config;
pub mod engine;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;

pub use api::app;
pub use config::{Config, Limits};
pub use engine::Engine;

use sagaflow_store::Store;
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};

/// What stops the coordinator from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the journal in {dir}: {source}")]
    Store {
        dir: std::path::PathBuf,
        source: sagaflow_store::Error,
    },
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

/// Runs the coordinator on its embedded journal until `shutdown` resolves, then stops taking
/// requests, lets in-flight calls answer (up to `shutdown_grace`), and flushes the journal.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = SqliteStore::open(&config.data_dir, SqliteConfig::default()).map_err(|source| {
        Error::Store {
            dir: config.data_dir.clone(),
            source,
        }
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    serve(config, Arc::new(store), listener, shutdown).await
}

/// Runs the coordinator on a given store and listener (tests and other backends use this).
pub async fn serve(
    config: Config,
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(metrics::Metrics::new());
    let engine = Engine::new(store, config.limits.clone(), metrics);
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "sagaflow listening");
    let router = app(engine.clone());
    let draining = engine.clone();
    let shutdown = async move {
        shutdown.await;
        // First stop new work and end long polls, so the HTTP server can finish its requests.
        draining.begin_drain();
    };
    // Serve while recovering: /healthz answers at once and /readyz says when recovery is done.
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
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
