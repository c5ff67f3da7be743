//! A service's HTTP side: `fn app(…) -> Router`, so tests call it with `oneshot` and no socket.
//!
//! - `POST` delivery routes (see [`Service::routes`]), behind the fault injector;
//! - `GET /healthz`: the process is up (never touches the database);
//! - `GET /state`: the service's tables as JSON (read-only; the invariant check does not
//!   trust it and reads the database itself);
//! - `GET /chaos`: the faults injected so far.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use sagaflow::participant::Delivery;
use tower::limit::GlobalConcurrencyLimitLayer;
use tracing::Instrument;

use crate::chaos::{self, Chaos};
use crate::{Db, Error, Service};

/// Deliveries handled at once; more wait their turn (Sagaflow bounds its calls in flight too).
const DELIVERIES_IN_FLIGHT_MAX: usize = 256;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    service: Service,
    db: Db,
    chaos: Arc<Chaos>,
}

/// The routes of `service`, on its database `db`, with faults from `chaos`.
pub fn app(service: Service, db: Db, chaos: Arc<Chaos>) -> Router {
    let mut deliveries = Router::new();
    for &(path, op) in service.routes() {
        deliveries = deliveries.route(
            path,
            post(
                move |State(state): State<AppState>, delivery: Delivery| async move {
                    let span = tracing::info_span!(
                        "delivery",
                        saga_id = %delivery.saga_id,
                        step = %delivery.step,
                        attempt = delivery.attempt,
                        kind = delivery.kind.as_str(),
                    );
                    state.db.deliver(op, delivery).instrument(span).await
                },
            ),
        );
    }
    let deliveries = deliveries
        .layer(middleware::from_fn_with_state(
            Arc::clone(&chaos),
            chaos::inject,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(DELIVERIES_IN_FLIGHT_MAX));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/state", get(state))
        .route("/chaos", get(injected))
        .merge(deliveries)
        .with_state(AppState { service, db, chaos })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn state(State(state): State<AppState>) -> Result<Response, Error> {
    let snapshot = state.db.snapshot(state.service).await?;
    Ok(Json(snapshot).into_response())
}

async fn injected(State(state): State<AppState>) -> Response {
    Json(state.chaos.injected()).into_response()
}

/// A failure of a read route: logged here, answered as a problem without internals.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "the service could not read its database; see its log",
        });
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
