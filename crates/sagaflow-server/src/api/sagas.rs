//! `/v1/sagas`.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use sagaflow_api::time::rfc3339;
use sagaflow_api::{
    HistoryEntry, HistoryList, Problem, SagaList, SagaSummary, SagaView, StartSaga, parse_body,
};
use sagaflow_core::{Payload, SagaStatus};
use sagaflow_store::ListFilter;

use super::error::ApiError;
use super::router::{body_or_problem, query_or_problem};
use crate::engine::{Engine, EngineError, StartRequest};

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// Page size of `GET /v1/sagas` when `limit` is left out.
const LIST_LIMIT_DEFAULT: usize = 50;

/// Starts a saga.
#[utoipa::path(post, path = "/v1/sagas", tag = "sagas",
    request_body = StartSaga,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body return the saga already started"),
        ("wait_ms" = Option<u64>, Query, description = "Hold the answer until the saga ends or this many ms pass"),
    ),
    responses(
        (status = 201, description = "Started and durable", body = SagaView),
        (status = 200, description = "An idempotent repeat", body = SagaView),
        (status = 404, description = "Unknown definition", body = Problem),
        (status = 422, description = "Invalid, or the key was used with another body", body = Problem),
        (status = 429, description = "Too many sagas in flight; see Retry-After", body = Problem),
    ))]
pub async fn start(
    State(engine): State<Engine>,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query = query_or_problem(query)?;
    let wait_ms = wait_ms(&query, engine.limits().wait_ms_max)?;
    let body = body_or_problem(body)?;
    let request: StartSaga = parse_body(&body)?;
    if request.definition.trim().is_empty() {
        return Err(ApiError::validation("definition", "must not be empty"));
    }
    let input = Payload::from_value(&request.input);
    let input_max = engine.limits().input_bytes_max;
    if input.len() > input_max {
        return Err(ApiError::validation(
            "input",
            format!(
                "{} bytes is more than the limit of {input_max}",
                input.len()
            ),
        ));
    }
    let idempotency_key = idempotency_key?;
    // Only a keyed start can be repeated, so only then is its digest worth computing.
    let request_hash = idempotency_key.as_ref().map(|_| request_hash(&request));
    let started = engine
        .start(StartRequest {
            definition: request.definition,
            version: request.version,
            input,
            idempotency_key,
            request_hash,
            want_view: wait_ms.is_none(),
        })
        .await
        .inspect_err(|e| {
            if matches!(e, EngineError::Overloaded(_)) {
                engine
                    .metrics()
                    .rejected
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "sagas_active_max",
                    })
                    .inc();
            }
        })?;
    let waited = match wait_ms {
        Some(wait) => {
            engine
                .wait_terminal(&started.id, Duration::from_millis(wait))
                .await
        }
        None => None,
    };
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(match (waited, started.view) {
        (Some(done), _) => (status, json_view(done)).into_response(),
        (None, Some(accepted)) if wait_ms.is_none() => (status, Json(accepted)).into_response(),
        _ => (status, Json(engine.get(&started.id).await?)).into_response(),
    })
}

/// A saga and its steps.
#[utoipa::path(get, path = "/v1/sagas/{id}", tag = "sagas",
    params(("id" = String, Path), ("wait_ms" = Option<u64>, Query, description = "Hold the answer until the saga ends or this many ms pass")),
    responses((status = 200, body = SagaView), (status = 404, body = Problem)))]
pub async fn get(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_or_problem(query)?;
    if let Some(wait) = wait_ms(&query, engine.limits().wait_ms_max)?
        && let Some(done) = engine.wait_terminal(&id, Duration::from_millis(wait)).await
    {
        return Ok(json_view(done).into_response());
    }
    Ok(Json(engine.get(&id).await?).into_response())
}

/// A saga's view already written as JSON (`SagaView::json_of`), answered as `Json` would.
fn json_view(view: Bytes) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        view,
    )
}

/// A saga's journal, oldest first.
#[utoipa::path(get, path = "/v1/sagas/{id}/history", tag = "sagas",
    params(("id" = String, Path)),
    responses((status = 200, body = HistoryList), (status = 404, body = Problem)))]
pub async fn history(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<HistoryList>, ApiError> {
    let (names, events) = engine.history(&id).await?;
    let items = events
        .iter()
        .map(|e| HistoryEntry::from_event(e, &names))
        .collect();
    Ok(Json(HistoryList { items }))
}

/// Sagas, newest first, paged by an opaque cursor.
#[utoipa::path(get, path = "/v1/sagas", tag = "sagas",
    params(
        ("status" = Option<String>, Query),
        ("definition" = Option<String>, Query),
        ("limit" = Option<usize>, Query, description = "1 … 1000, 50 when left out"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = SagaList), (status = 422, body = Problem)))]
pub async fn list(
    State(engine): State<Engine>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<SagaList>, ApiError> {
    let query = query_or_problem(query)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(SagaStatus::parse(s).ok_or_else(|| {
            ApiError::validation(
                "status",
                format!(
                    "{s:?} is not one of running, compensating, completed, compensated, failed"
                ),
            )
        })?),
    };
    let limit_max = engine.limits().list_limit_max;
    let limit = match query.get("limit") {
        None => LIST_LIMIT_DEFAULT.min(limit_max),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=limit_max).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "limit",
                    format!("must be a number between 1 and {limit_max}"),
                ));
            }
        },
    };
    let cursor = match query.get("cursor") {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::validation("cursor", "is not a cursor this API gave"))?,
        ),
    };
    let page = engine
        .store()
        .list_sagas(ListFilter {
            status,
            definition: query.get("definition").cloned(),
            limit,
            cursor,
        })
        .await
        .map_err(EngineError::from)?;
    Ok(Json(SagaList {
        items: page
            .items
            .into_iter()
            .map(|r| SagaSummary {
                id: r.id,
                definition: r.definition,
                version: r.version,
                status: r.status.as_str().to_owned(),
                created_at: rfc3339(r.created_at_ms),
                updated_at: rfc3339(r.updated_at_ms),
            })
            .collect(),
        next_cursor: page.next_cursor.map(encode_cursor),
    }))
}

/// Cancels a saga: it takes no new step and compensates what completed.
#[utoipa::path(post, path = "/v1/sagas/{id}/cancel", tag = "sagas",
    params(("id" = String, Path)),
    responses((status = 202, body = SagaView), (status = 404, body = Problem),
              (status = 409, description = "The saga is terminal", body = Problem)))]
pub async fn cancel(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = engine.cancel(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// Resumes the compensations of a failed saga with fresh attempts.
#[utoipa::path(post, path = "/v1/sagas/{id}/retry", tag = "sagas",
    params(("id" = String, Path)),
    responses((status = 202, body = SagaView), (status = 404, body = Problem),
              (status = 409, description = "The saga is not failed", body = Problem)))]
pub async fn retry(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = engine.retry(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The query of a start and of a saga's `GET`: other parameters are ignored, as they are
/// elsewhere, and one given twice is a problem (`query_or_problem`).
#[derive(serde::Deserialize)]
pub struct WaitQuery {
    wait_ms: Option<String>,
}

fn wait_ms(query: &WaitQuery, wait_ms_max: u64) -> Result<Option<u64>, ApiError> {
    match &query.wait_ms {
        None => Ok(None),
        Some(w) => w
            .parse::<u64>()
            .map(|w| Some(w.min(wait_ms_max)))
            .map_err(|_| ApiError::validation("wait_ms", "must be a whole number of milliseconds")),
    }
}

/// A start's `Idempotency-Key`, read from the request's headers where they are (taking a
/// `HeaderMap` would copy them all for each start), and checked when the handler comes to it:
/// a malformed key is answered after a malformed query or body, as before.
pub struct IdempotencyKey(Result<Option<String>, ApiError>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IdempotencyKey(idempotency_key(&parts.headers)))
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= IDEMPOTENCY_KEY_LEN_MAX
                && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// A digest of what makes a start request the same request: definition, version and input
/// (object keys sorted, so key order does not matter). Two FNV-1a passes give 128 bits.
fn request_hash(request: &StartSaga) -> String {
    let canonical = serde_json::json!({
        "definition": request.definition,
        "version": request.version,
        "input": request.input,
    })
    .to_string();
    let fnv = |offset: u64| {
        canonical.bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

const CURSOR_PREFIX: &str = "c1.";

fn encode_cursor(seq: i64) -> String {
    format!("{CURSOR_PREFIX}{seq:x}")
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    i64::from_str_radix(cursor.strip_prefix(CURSOR_PREFIX)?, 16)
        .ok()
        .filter(|seq| *seq > 0)
}
