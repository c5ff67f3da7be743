//! What Sagaflow sent: the facts of one delivery, read from its headers and body.

use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

/// Whether a delivery is a step's action or its compensation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Action,
    Compensation,
}

impl Kind {
    /// `action` or `compensation`, as the Idempotency-Key ends.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::Compensation => "compensation",
        }
    }
}

/// One request from Sagaflow, as far as it could be read. A request that is not from Sagaflow
/// (a `curl` by hand) still reads, with the missing parts left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// `Idempotency-Key`: `{saga_id}/{step}/action` or `…/compensation`.
    pub key: Option<String>,
    pub saga_id: Option<String>,
    pub step: Option<String>,
    pub kind: Kind,
    pub attempt: Option<u32>,
    pub traceparent: Option<String>,
    pub method: String,
    pub path: String,
    /// The saga's input, from the body (`null` when absent or not JSON).
    pub input: Value,
}

impl Delivery {
    /// Reads a delivery; the headers win over the body where both say something.
    pub fn read(method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Delivery {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let body_text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let key = header("idempotency-key");
        let kind = match &key {
            Some(key) if key.ends_with("/compensation") => Kind::Compensation,
            _ => Kind::Action,
        };
        Delivery {
            saga_id: header("sagaflow-saga-id").or_else(|| body_text("saga_id")),
            step: header("sagaflow-step").or_else(|| body_text("step")),
            attempt: header("sagaflow-attempt")
                .and_then(|a| a.parse().ok())
                .or_else(|| {
                    body.get("attempt")
                        .and_then(Value::as_u64)
                        .and_then(|a| u32::try_from(a).ok())
                }),
            traceparent: header("traceparent"),
            key,
            kind,
            method: method.to_owned(),
            path: path.to_owned(),
            input: body.get("input").cloned().unwrap_or(Value::Null),
        }
    }

    /// Whether the saga's input says this step's action must be refused: `input.refuse` is
    /// the step's name (or a list holding it).
    pub fn refused_by_input(&self) -> bool {
        let (Kind::Action, Some(step)) = (self.kind, &self.step) else {
            return false;
        };
        match self.input.get("refuse") {
            Some(Value::String(name)) => name == step,
            Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(step)),
            _ => false,
        }
    }

    /// `input.delay_ms`, when the saga's input asks every delivery to be slow.
    pub fn input_delay_ms(&self) -> Option<u64> {
        self.input.get("delay_ms").and_then(Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn headers_win_over_the_body() {
        let body =
            json!({"saga_id": "body-id", "step": "body-step", "attempt": 9, "input": {"a": 1}});
        let delivery = Delivery::read(
            "POST",
            "/reserve",
            &headers(&[
                ("idempotency-key", "s1/reserve/compensation"),
                ("sagaflow-saga-id", "s1"),
                ("sagaflow-step", "reserve"),
                ("sagaflow-attempt", "2"),
            ]),
            body.to_string().as_bytes(),
        );
        assert_eq!(delivery.saga_id.as_deref(), Some("s1"));
        assert_eq!(delivery.step.as_deref(), Some("reserve"));
        assert_eq!(delivery.attempt, Some(2));
        assert_eq!(delivery.kind, Kind::Compensation);
        assert_eq!(delivery.input, json!({"a": 1}));
    }

    #[test]
    fn a_bare_request_still_reads() {
        let delivery = Delivery::read("GET", "/x", &HeaderMap::new(), b"not json");
        assert_eq!(delivery.key, None);
        assert_eq!(delivery.kind, Kind::Action);
        assert_eq!(delivery.input, Value::Null);
    }

    #[test]
    fn refusal_applies_to_the_named_steps_action_only() {
        let body = json!({"input": {"refuse": ["ship", "charge"]}}).to_string();
        let action = Delivery::read(
            "POST",
            "/",
            &headers(&[
                ("idempotency-key", "s/ship/action"),
                ("sagaflow-step", "ship"),
            ]),
            body.as_bytes(),
        );
        assert!(action.refused_by_input());
        let compensation = Delivery {
            kind: Kind::Compensation,
            ..action.clone()
        };
        assert!(!compensation.refused_by_input());
        let other = Delivery {
            step: Some("reserve".to_owned()),
            ..action
        };
        assert!(!other.refused_by_input());
    }
}
