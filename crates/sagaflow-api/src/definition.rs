//! Definitions on the wire, and their conversion to `sagaflow_core::Definition`.

use serde::{Deserialize, Serialize};

use sagaflow_core::definition::STEP_TIMEOUT_MS_DEFAULT;
use sagaflow_core::{
    Call, Definition, DefinitionLimits, Jitter, Method, RetryPolicy, StepDef, ValidationError,
};

/// `POST /v1/definitions`. Fields left out take the API's defaults. Numbers are read as signed
/// so that a negative value is a validation error naming its field, not a parse error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The saga's deadline from its start (1 ms … 30 days); none when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepSpec>>,
}

/// One step of a definition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<CallSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CallSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation_retry: Option<RetrySpec>,
}

/// An HTTP call to a participant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `POST` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The attempt's timeout (1 ms … 1 h), 10000 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
}

/// A retry policy; each field left out takes the default of its kind (action or compensation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetrySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// `full`, `equal` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
}

/// The answer to `POST /v1/definitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionCreated {
    pub name: String,
    pub version: u32,
}

/// One item of `GET /v1/definitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionSummary {
    pub name: String,
    pub version: u32,
    pub steps: usize,
    pub created_at: String,
}

/// `GET /v1/definitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionList {
    pub items: Vec<DefinitionSummary>,
}

impl DefinitionSpec {
    /// Fills in the defaults and checks every rule. The version is left at 0 (the store
    /// assigns it).
    pub fn to_definition(&self, limits: &DefinitionLimits) -> Result<Definition, ValidationError> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| ValidationError::new("name", "is required"))?;
        let specs = self
            .steps
            .as_ref()
            .ok_or_else(|| ValidationError::new("steps", "is required"))?;
        if specs.len() > limits.steps_max {
            return Err(ValidationError::new(
                "steps",
                format!(
                    "{} steps is more than the limit of {}",
                    specs.len(),
                    limits.steps_max
                ),
            ));
        }
        let mut steps = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            steps.push(spec.to_step(&format!("steps[{index}]"))?);
        }
        let definition = Definition {
            name,
            version: 0,
            timeout_ms: self
                .timeout_ms
                .map(|t| non_negative("timeout_ms", t))
                .transpose()?,
            steps,
        };
        definition.validate(limits)?;
        Ok(definition)
    }

    /// The spec of a domain definition, every default spelled out.
    pub fn from_definition(definition: &Definition) -> DefinitionSpec {
        DefinitionSpec {
            name: Some(definition.name.clone()),
            timeout_ms: definition.timeout_ms.map(|t| t as i64),
            steps: Some(
                definition
                    .steps
                    .iter()
                    .map(|s| StepSpec {
                        name: Some(s.name.clone()),
                        action: Some(CallSpec::from_call(&s.action)),
                        compensation: s.compensation.as_ref().map(CallSpec::from_call),
                        retry: Some(RetrySpec::from_policy(&s.retry)),
                        compensation_retry: Some(RetrySpec::from_policy(&s.compensation_retry)),
                    })
                    .collect(),
            ),
        }
    }
}

impl StepSpec {
    fn to_step(&self, at: &str) -> Result<StepDef, ValidationError> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| ValidationError::new(format!("{at}.name"), "is required"))?;
        let action = self
            .action
            .as_ref()
            .ok_or_else(|| ValidationError::new(format!("{at}.action"), "is required"))?
            .to_call(&format!("{at}.action"))?;
        let compensation = self
            .compensation
            .as_ref()
            .map(|c| c.to_call(&format!("{at}.compensation")))
            .transpose()?;
        let retry = RetrySpec::to_policy(
            self.retry.as_ref(),
            RetryPolicy::action_default(),
            &format!("{at}.retry"),
        )?;
        let compensation_retry = RetrySpec::to_policy(
            self.compensation_retry.as_ref(),
            RetryPolicy::compensation_default(),
            &format!("{at}.compensation_retry"),
        )?;
        Ok(StepDef {
            name,
            action,
            compensation,
            retry,
            compensation_retry,
        })
    }
}

impl CallSpec {
    fn to_call(&self, at: &str) -> Result<Call, ValidationError> {
        let url = self
            .url
            .clone()
            .ok_or_else(|| ValidationError::new(format!("{at}.url"), "is required"))?;
        let method = match &self.method {
            None => Method::Post,
            Some(m) => Method::parse(m).ok_or_else(|| {
                ValidationError::new(
                    format!("{at}.method"),
                    format!("{m:?} is not one of POST, PUT, PATCH, DELETE, GET"),
                )
            })?,
        };
        let timeout_ms = match self.timeout_ms {
            None => STEP_TIMEOUT_MS_DEFAULT,
            Some(t) => non_negative(&format!("{at}.timeout_ms"), t)?,
        };
        Ok(Call {
            url,
            method,
            timeout_ms,
        })
    }

    fn from_call(call: &Call) -> CallSpec {
        CallSpec {
            url: Some(call.url.clone()),
            method: Some(call.method.as_str().to_owned()),
            timeout_ms: Some(call.timeout_ms as i64),
        }
    }
}

impl RetrySpec {
    fn to_policy(
        spec: Option<&RetrySpec>,
        default: RetryPolicy,
        at: &str,
    ) -> Result<RetryPolicy, ValidationError> {
        let Some(spec) = spec else {
            return Ok(default);
        };
        let max_attempts = match spec.max_attempts {
            None => default.max_attempts,
            Some(n) => u32::try_from(n).map_err(|_| {
                ValidationError::new(format!("{at}.max_attempts"), "must be between 1 and 100")
            })?,
        };
        let jitter = match &spec.jitter {
            None => default.jitter,
            Some(j) => Jitter::parse(j).ok_or_else(|| {
                ValidationError::new(
                    format!("{at}.jitter"),
                    format!("{j:?} is not one of full, equal, none"),
                )
            })?,
        };
        Ok(RetryPolicy {
            max_attempts,
            initial_backoff_ms: match spec.initial_backoff_ms {
                None => default.initial_backoff_ms,
                Some(n) => non_negative(&format!("{at}.initial_backoff_ms"), n)?,
            },
            max_backoff_ms: match spec.max_backoff_ms {
                None => default.max_backoff_ms.max(
                    // A larger initial backoff than the default cap raises the cap with it.
                    spec.initial_backoff_ms.unwrap_or(0).max(0) as u64,
                ),
                Some(n) => non_negative(&format!("{at}.max_backoff_ms"), n)?,
            },
            multiplier: spec.multiplier.unwrap_or(default.multiplier),
            jitter,
        })
    }

    fn from_policy(policy: &RetryPolicy) -> RetrySpec {
        RetrySpec {
            max_attempts: Some(i64::from(policy.max_attempts)),
            initial_backoff_ms: Some(policy.initial_backoff_ms as i64),
            max_backoff_ms: Some(policy.max_backoff_ms as i64),
            multiplier: Some(policy.multiplier),
            jitter: Some(
                match policy.jitter {
                    Jitter::Full => "full",
                    Jitter::Equal => "equal",
                    Jitter::None => "none",
                }
                .to_owned(),
            ),
        }
    }
}

fn non_negative(field: &str, value: i64) -> Result<u64, ValidationError> {
    u64::try_from(value).map_err(|_| ValidationError::new(field, "must not be negative"))
}

/// `GET /v1/definitions/{name}`: the definition with every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionView {
    pub version: u32,
    pub created_at: String,
    #[serde(flatten)]
    pub spec: DefinitionSpec,
}
