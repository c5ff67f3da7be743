//! The OpenAPI 3.1 document, generated from the handlers and the wire types.

use utoipa::OpenApi;

use super::{definitions, ops, sagas};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sagaflow",
        description = "A durable saga orchestrator's HTTP API (version 1)."
    ),
    paths(
        definitions::put,
        definitions::list,
        definitions::get,
        sagas::start,
        sagas::list,
        sagas::get,
        sagas::history,
        sagas::cancel,
        sagas::retry,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(
        sagaflow_api::DefinitionSpec,
        sagaflow_api::StepSpec,
        sagaflow_api::CallSpec,
        sagaflow_api::RetrySpec,
        sagaflow_api::DefinitionCreated,
        sagaflow_api::DefinitionList,
        sagaflow_api::DefinitionSummary,
        sagaflow_api::DefinitionView,
        sagaflow_api::StartSaga,
        sagaflow_api::SagaView,
        sagaflow_api::StepView,
        sagaflow_api::CompensationView,
        sagaflow_api::SagaList,
        sagaflow_api::SagaSummary,
        sagaflow_api::HistoryList,
        sagaflow_api::HistoryEntry,
        sagaflow_api::Problem,
    ))
)]
pub struct ApiDoc;
