//! What a handler decides, and what the participant answers.

use serde_json::{Value, json};

/// The handler's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done: the step's output (any JSON). Answered `200`.
    Done(Value),
    /// The business said no (out of stock, card declined). Answered with `status`, a 4xx that
    /// Sagaflow does not retry; the transaction's changes are still committed with the record,
    /// so make none before refusing.
    Refused {
        /// A 4xx other than 408, 425, 429 (those mean "try again").
        status: u16,
        /// A short title (`out of stock`).
        title: String,
        /// A sentence for people.
        detail: String,
    },
}

impl Outcome {
    /// Done, with this output.
    pub fn done(output: Value) -> Outcome {
        Outcome::Done(output)
    }

    /// Refused with a business 4xx.
    pub fn refused(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::Refused {
            status,
            title: title.into(),
            detail: detail.into(),
        }
    }

    /// The answer to record and send.
    pub(crate) fn answer(&self) -> (u16, Value) {
        match self {
            Outcome::Done(output) => (200, output.clone()),
            Outcome::Refused {
                status,
                title,
                detail,
            } => (*status, problem(*status, title, detail)),
        }
    }
}

pub(crate) fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    })
}

/// What the participant sends back.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (the output, or a problem).
    pub body: Value,
    /// `true` when this is the recorded answer of an earlier delivery, sent again.
    pub replayed: bool,
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Answer {
    fn into_response(self) -> axum::response::Response {
        let status = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
        let content_type = if status.is_success() {
            "application/json"
        } else {
            "application/problem+json"
        };
        let mut response = (
            status,
            [(http::header::CONTENT_TYPE, content_type)],
            self.body.to_string(),
        )
            .into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert("sagaflow-replayed", http::HeaderValue::from_static("true"));
        }
        response
    }
}
