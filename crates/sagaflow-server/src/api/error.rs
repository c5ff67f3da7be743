//! `ApiError`: every failure of a handler, answered as an RFC 9457 problem that never leaks
//! internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use sagaflow_api::{BodyError, Problem};
use sagaflow_core::ValidationError;

use crate::engine::EngineError;

/// A problem to answer with, plus an optional `Retry-After` in seconds.
#[derive(Debug)]
pub struct ApiError {
    pub problem: Problem,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            problem: Problem::new(slug, title, status.as_u16(), detail),
            retry_after_s: None,
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let detail = if field.is_empty() {
            message
        } else {
            format!("{field}: {message}")
        };
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
            detail,
        );
        if !field.is_empty() {
            error.problem.field = Some(field.to_owned());
        }
        error
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn too_many(detail: impl Into<String>, retry_after_s: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "Too many requests",
            detail,
        );
        error.retry_after_s = Some(retry_after_s);
        error
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError::validation(&e.field, e.message)
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        match e {
            BodyError::Syntax(message) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not valid JSON: {message}"),
            ),
            BodyError::Shape { field, message } => ApiError::validation(&field, message),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::SagaNotFound(id) => ApiError::not_found(format!("no saga {id}")),
            EngineError::DefinitionNotFound(name) => {
                ApiError::not_found(format!("no definition {name}"))
            }
            EngineError::Conflict(detail) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
            }
            e @ EngineError::IdempotencyMismatch(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                e.to_string(),
            ),
            e @ EngineError::Overloaded(_) => ApiError::too_many(e.to_string(), 1),
            e @ EngineError::ShardMoved => {
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shard-moved",
                    "Shard moved",
                    e.to_string(),
                );
                error.retry_after_s = Some(1);
                error
            }
            EngineError::ShuttingDown => {
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting-down",
                    "Shutting down",
                    "the coordinator is shutting down; try another replica or again shortly",
                );
                error.retry_after_s = Some(1);
                error
            }
            EngineError::Store(e) => {
                tracing::error!(error = %e, "store error answering a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Store unavailable",
                    "the journal could not be read or written; try again",
                )
            }
            EngineError::Internal(message) => {
                tracing::error!(error = %message, "internal error answering a request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the coordinator hit an internal error; it is logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after_s
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}
