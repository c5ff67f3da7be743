//! [`Saga`] and [`Step`]: a builder for [`DefinitionSpec`]s, so definitions can be written in
//! Rust instead of JSON. Anything left unset takes the server's default.

use sagaflow_api::{CallSpec, DefinitionSpec, RetrySpec, StepSpec};

/// A saga definition under construction; [`Saga::build`] gives its [`DefinitionSpec`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saga {
    name: String,
    timeout_ms: Option<i64>,
    steps: Vec<StepSpec>,
}

impl Saga {
    /// A definition named `name`, with no steps yet.
    pub fn new(name: impl Into<String>) -> Saga {
        Saga {
            name: name.into(),
            ..Saga::default()
        }
    }

    /// The saga's deadline from its start, in milliseconds (1 ms … 30 days).
    pub fn timeout_ms(mut self, timeout_ms: i64) -> Saga {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Appends a step; steps run in the order they are added.
    pub fn step(mut self, step: Step) -> Saga {
        self.steps.push(step.spec);
        self
    }

    /// The definition, ready for [`Client::apply_definition`](crate::Client::apply_definition).
    pub fn build(self) -> DefinitionSpec {
        DefinitionSpec {
            name: Some(self.name),
            timeout_ms: self.timeout_ms,
            steps: Some(self.steps),
        }
    }
}

impl From<Saga> for DefinitionSpec {
    fn from(saga: Saga) -> DefinitionSpec {
        saga.build()
    }
}

/// One step: an action, and optionally a compensation and retry policies.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    spec: StepSpec,
}

impl Step {
    /// A step named `name` whose action is a `POST` to `action_url`.
    pub fn new(name: impl Into<String>, action_url: impl Into<String>) -> Step {
        Step {
            spec: StepSpec {
                name: Some(name.into()),
                action: Some(CallSpec {
                    url: Some(action_url.into()),
                    ..CallSpec::default()
                }),
                ..StepSpec::default()
            },
        }
    }

    /// The action's HTTP method (`POST`, `PUT`, `PATCH`, `DELETE` or `GET`).
    pub fn method(mut self, method: impl Into<String>) -> Step {
        self.action().method = Some(method.into());
        self
    }

    /// The timeout of each attempt of the action, in milliseconds (1 ms … 1 h).
    pub fn timeout_ms(mut self, timeout_ms: i64) -> Step {
        self.action().timeout_ms = Some(timeout_ms);
        self
    }

    /// The compensation: a `POST` to `url` that undoes the action.
    pub fn compensation(mut self, url: impl Into<String>) -> Step {
        self.spec.compensation = Some(CallSpec {
            url: Some(url.into()),
            ..CallSpec::default()
        });
        self
    }

    /// The compensation as a full call (method and timeout too).
    pub fn compensation_call(mut self, call: CallSpec) -> Step {
        self.spec.compensation = Some(call);
        self
    }

    /// The action's retry policy; fields left `None` take the action defaults.
    pub fn retry(mut self, retry: RetrySpec) -> Step {
        self.spec.retry = Some(retry);
        self
    }

    /// The compensation's retry policy; fields left `None` take the compensation defaults.
    pub fn compensation_retry(mut self, retry: RetrySpec) -> Step {
        self.spec.compensation_retry = Some(retry);
        self
    }

    fn action(&mut self) -> &mut CallSpec {
        self.spec.action.get_or_insert_with(CallSpec::default)
    }
}

impl From<Step> for StepSpec {
    fn from(step: Step) -> StepSpec {
        step.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_the_json_the_api_documents() {
        let spec = Saga::new("place-order")
            .timeout_ms(60_000)
            .step(
                Step::new("reserve-stock", "http://127.0.0.1:8101/reservations")
                    .timeout_ms(2000)
                    .compensation("http://127.0.0.1:8101/reservations/cancel")
                    .retry(RetrySpec {
                        max_attempts: Some(5),
                        jitter: Some("full".to_owned()),
                        ..RetrySpec::default()
                    }),
            )
            .step(Step::new("ship", "http://127.0.0.1:8103/shipments").method("PUT"))
            .build();
        assert_eq!(
            serde_json::to_value(&spec).expect("a spec serializes"),
            json!({
                "name": "place-order",
                "timeout_ms": 60000,
                "steps": [
                    {
                        "name": "reserve-stock",
                        "action": { "url": "http://127.0.0.1:8101/reservations", "timeout_ms": 2000 },
                        "compensation": { "url": "http://127.0.0.1:8101/reservations/cancel" },
                        "retry": { "max_attempts": 5, "jitter": "full" }
                    },
                    {
                        "name": "ship",
                        "action": { "url": "http://127.0.0.1:8103/shipments", "method": "PUT" }
                    }
                ]
            })
        );
    }

    #[test]
    fn a_saga_without_steps_still_names_an_empty_list() {
        let spec: DefinitionSpec = Saga::new("empty").into();
        assert_eq!(spec.steps, Some(vec![]));
        assert_eq!(spec.timeout_ms, None);
    }
}
