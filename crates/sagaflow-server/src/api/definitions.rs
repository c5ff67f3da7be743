//! `/v1/definitions`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use sagaflow_api::time::rfc3339;
use sagaflow_api::{
    DefinitionCreated, DefinitionList, DefinitionSpec, DefinitionSummary, DefinitionView, Problem,
    parse_body,
};

use super::error::ApiError;
use super::router::{body_or_problem, query_or_problem};
use crate::engine::{Engine, EngineError};

/// Registers a definition (a new version when the body differs from the latest).
#[utoipa::path(post, path = "/v1/definitions", tag = "definitions",
    request_body = DefinitionSpec,
    responses(
        (status = 201, description = "A new version", body = DefinitionCreated),
        (status = 200, description = "Identical to the latest version", body = DefinitionCreated),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 422, description = "A rule is broken; `field` names it", body = Problem),
    ))]
pub async fn put(
    State(engine): State<Engine>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_problem(body)?;
    let spec: DefinitionSpec = parse_body(&body)?;
    let definition = spec.to_definition(&engine.definition_limits())?;
    let (stored, created) = engine.put_definition(definition).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DefinitionCreated {
            name: stored.name.clone(),
            version: stored.version,
        }),
    )
        .into_response())
}

/// The latest version of every definition.
#[utoipa::path(get, path = "/v1/definitions", tag = "definitions",
    responses((status = 200, body = DefinitionList)))]
pub async fn list(State(engine): State<Engine>) -> Result<Json<DefinitionList>, ApiError> {
    let records = engine
        .store()
        .list_definitions()
        .await
        .map_err(EngineError::from)?;
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        let steps = serde_json::from_str::<sagaflow_core::Definition>(&record.body)
            .map(|d| d.steps.len())
            .unwrap_or(0);
        items.push(DefinitionSummary {
            name: record.name,
            version: record.version,
            steps,
            created_at: rfc3339(record.created_at_ms),
        });
    }
    Ok(Json(DefinitionList { items }))
}

/// One definition, with every default filled in.
#[utoipa::path(get, path = "/v1/definitions/{name}", tag = "definitions",
    params(("name" = String, Path), ("version" = Option<u32>, Query, description = "A version other than the latest")),
    responses((status = 200, body = DefinitionView), (status = 404, body = Problem)))]
pub async fn get(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<DefinitionView>, ApiError> {
    let query = query_or_problem(query)?;
    let version = match query.get("version") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            ApiError::validation("version", format!("{v:?} is not a version number"))
        })?),
    };
    let definition = engine.definition(&name, version).await?.ok_or_else(|| {
        ApiError::not_found(match version {
            Some(v) => format!("no definition {name} v{v}"),
            None => format!("no definition {name}"),
        })
    })?;
    let created_at = engine
        .store()
        .get_definition(&name, Some(definition.version))
        .await
        .map_err(EngineError::from)?
        .map_or(0, |r| r.created_at_ms);
    Ok(Json(DefinitionView {
        version: definition.version,
        created_at: rfc3339(created_at),
        spec: DefinitionSpec::from_definition(&definition),
    }))
}
