//! The participant helpers' error type.

/// Why a delivery could not be handled. Each is answered `500` (a transient failure for
/// Sagaflow, which retries): nothing was recorded and the business change was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The handler failed (not a business refusal: those are [`Outcome::Refused`](super::Outcome)).
    #[error("the handler failed: {0}")]
    Handler(String),
    /// The participant's database failed.
    #[error("the participant's database failed: {0}")]
    Database(String),
    /// The request is not a Sagaflow delivery (a header or the body is missing or malformed).
    #[error("not a Sagaflow delivery: {0}")]
    BadDelivery(String),
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Database(e.to_string())
    }
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        Error::Database(e.to_string())
    }
}

#[cfg(feature = "postgres")]
impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Error {
        Error::Database(e.to_string())
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        let status = match self {
            Error::BadDelivery(_) => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(error = %self, "delivery not handled");
        let problem = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        (
            status,
            [(http::header::CONTENT_TYPE, "application/problem+json")],
            problem.to_string(),
        )
            .into_response()
    }
}
