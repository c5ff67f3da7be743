//! `app(engine) -> Router`: every route, the body limit, and problem answers for what axum
//! would otherwise answer in plain text.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;

use super::error::ApiError;
use super::{definitions, ops, sagas};
use crate::engine::Engine;

/// The coordinator's HTTP API.
pub fn app(engine: Engine) -> Router {
    let body_limit = engine.limits().body_bytes_max;
    Router::new()
        .route(
            "/v1/definitions",
            post(definitions::put).get(definitions::list),
        )
        .route("/v1/definitions/{name}", get(definitions::get))
        .route("/v1/sagas", post(sagas::start).get(sagas::list))
        .route("/v1/sagas/{id}", get(sagas::get))
        .route("/v1/sagas/{id}/history", get(sagas::history))
        .route("/v1/sagas/{id}/cancel", post(sagas::cancel))
        .route("/v1/sagas/{id}/retry", post(sagas::retry))
        .route("/healthz", get(ops::healthz))
        .route("/livez", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(engine)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not take that method",
    )
}

/// The body, or a problem (413 above the limit).
pub(super) fn body_or_problem(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload-too-large",
                "Payload too large",
                "the request body is larger than the configured limit",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "Unreadable body",
                rejection.body_text(),
            )
        }
    })
}

/// The query string, or a problem.
pub(super) fn query_or_problem<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::validation("query", rejection.body_text()))
}
