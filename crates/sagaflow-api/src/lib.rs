//! The wire types of Sagaflow's HTTP API (`shared/API.md`), shared by the server, the SDK and
//! the CLI, with explicit conversions to and from `sagaflow-core`'s domain types.
//!
//! - [`definition`]: what `POST /v1/definitions` accepts and `GET /v1/definitions` answers.
//! - [`saga`]: starting, reading, listing sagas and their history.
//! - [`problem`]: RFC 9457 problem details, the one shape of every error.
//! - [`time`]: RFC 3339 timestamps from milliseconds.

pub mod definition;
pub mod problem;
pub mod saga;
pub mod time;

pub use definition::{
    CallSpec, DefinitionCreated, DefinitionList, DefinitionSpec, DefinitionSummary, DefinitionView,
    RetrySpec, StepSpec,
};
pub use problem::Problem;
pub use saga::{
    CompensationView, HistoryEntry, HistoryList, SagaList, SagaSummary, SagaView, StartSaga,
    StepView,
};

/// Parses a JSON body into `T`, telling malformed JSON (`Syntax`) from JSON of the wrong shape
/// (`Shape`, naming the field), as the API answers them with 400 and 422.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let mut field = if path == "." { String::new() } else { path };
                // serde names a missing field in its message, not in the path.
                if let Some(missing) = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                {
                    field = if field.is_empty() {
                        missing.to_owned()
                    } else {
                        format!("{field}.{missing}")
                    };
                }
                BodyError::Shape { field, message }
            }
            _ => BodyError::Syntax(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| BodyError::Syntax(e.to_string()))?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Why a body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all.
    Syntax(String),
    /// JSON, but a field has the wrong type or is missing.
    Shape { field: String, message: String },
}
