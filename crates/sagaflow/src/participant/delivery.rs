//! What Sagaflow sends a participant.

use serde_json::Value;

use super::Error;

/// Whether a delivery is a step's action or its compensation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The step's forward change.
    Action,
    /// The undo of the step's action.
    Compensation,
}

impl Kind {
    /// `action` or `compensation`, as in the `Idempotency-Key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::Compensation => "compensation",
        }
    }
}

/// One delivery of an action or a compensation.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// `{saga_id}/{step}/{action|compensation}`: the same for every attempt and re-delivery.
    pub idempotency_key: String,
    /// The saga's id.
    pub saga_id: String,
    /// The step's name.
    pub step: String,
    /// Action or compensation.
    pub kind: Kind,
    /// The attempt number (a re-delivery after a coordinator restart repeats it).
    pub attempt: u32,
    /// The saga's input.
    pub input: Value,
    /// Earlier steps' outputs, by step name.
    pub results: Value,
    /// The W3C `traceparent` header, when present.
    pub traceparent: Option<String>,
}

impl Delivery {
    /// Reads a delivery from the headers and the JSON body Sagaflow sends.
    pub fn from_parts(headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, Error> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let key = header("idempotency-key")
            .ok_or_else(|| Error::BadDelivery("no Idempotency-Key header".into()))?;
        let mut parts = key.rsplitn(3, '/');
        let kind = match parts.next() {
            Some("action") => Kind::Action,
            Some("compensation") => Kind::Compensation,
            _ => {
                return Err(Error::BadDelivery(format!(
                    "Idempotency-Key {key:?} does not end in /action or /compensation"
                )));
            }
        };
        let step_from_key = parts.next().unwrap_or_default().to_owned();
        let saga_from_key = parts.next().unwrap_or_default().to_owned();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Error::BadDelivery(format!("the body is not JSON: {e}")))?
        };
        // The key is what deliveries are deduplicated on, so the saga and step come from it;
        // a header or body that says otherwise is refused rather than guessed at.
        let saga_id = saga_from_key;
        let step = step_from_key;
        if saga_id.is_empty() || step.is_empty() {
            return Err(Error::BadDelivery(format!(
                "Idempotency-Key {key:?} is not {{saga_id}}/{{step}}/{{action|compensation}}"
            )));
        }
        let said = [
            ("Sagaflow-Saga-Id", header("sagaflow-saga-id"), &saga_id),
            ("Sagaflow-Step", header("sagaflow-step"), &step),
            (
                "body.saga_id",
                body["saga_id"].as_str().map(str::to_owned),
                &saga_id,
            ),
            ("body.step", body["step"].as_str().map(str::to_owned), &step),
        ];
        for (name, value, expected) in said {
            if let Some(value) = value
                && value != *expected
            {
                return Err(Error::BadDelivery(format!(
                    "{name} {value:?} does not match the Idempotency-Key {key:?}"
                )));
            }
        }
        let attempt = header("sagaflow-attempt")
            .and_then(|a| a.parse().ok())
            .or_else(|| body["attempt"].as_u64().map(|a| a as u32))
            .unwrap_or(1);
        Ok(Delivery {
            idempotency_key: key,
            saga_id,
            step,
            kind,
            attempt,
            input: body.get("input").cloned().unwrap_or(Value::Null),
            results: body.get("results").cloned().unwrap_or(Value::Null),
            traceparent: header("traceparent"),
        })
    }

    /// The key of this step's action (also for a compensation).
    pub fn action_key(&self) -> String {
        format!("{}/{}/action", self.saga_id, self.step)
    }

    /// The key of this step's compensation (also for an action).
    pub fn compensation_key(&self) -> String {
        format!("{}/{}/compensation", self.saga_id, self.step)
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequest<S> for Delivery {
    type Rejection = Error;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Delivery, Error> {
        let (parts, body) = request.into_parts();
        let request = axum::extract::Request::from_parts(parts, body);
        let headers = request.headers().clone();
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| Error::BadDelivery(e.to_string()))?;
        Delivery::from_parts(&headers, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_read_from_headers_and_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "idempotency-key",
            "s1/reserve/compensation".parse().unwrap(),
        );
        headers.insert("sagaflow-attempt", "3".parse().unwrap());
        let body =
            br#"{"saga_id":"s1","step":"reserve","attempt":3,"input":{"sku":"A"},"results":{}}"#;
        let d = Delivery::from_parts(&headers, body).unwrap();
        assert_eq!(d.kind, Kind::Compensation);
        assert_eq!(
            (d.saga_id.as_str(), d.step.as_str(), d.attempt),
            ("s1", "reserve", 3)
        );
        assert_eq!(d.input["sku"], "A");
        assert_eq!(d.action_key(), "s1/reserve/action");
    }

    #[test]
    fn headers_that_contradict_the_key_are_refused() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "idempotency-key",
            "s9/reserve/compensation".parse().unwrap(),
        );
        headers.insert("sagaflow-saga-id", "s1".parse().unwrap());
        assert!(matches!(
            Delivery::from_parts(&headers, b"{}"),
            Err(Error::BadDelivery(_))
        ));
    }

    #[test]
    fn a_request_without_a_key_is_not_a_delivery() {
        let headers = http::HeaderMap::new();
        assert!(matches!(
            Delivery::from_parts(&headers, b"{}"),
            Err(Error::BadDelivery(_))
        ));
    }
}
