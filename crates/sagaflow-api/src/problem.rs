//! RFC 9457 problem details.

use serde::{Deserialize, Serialize};

/// The body of every error answer (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `https://sagaflow.dev/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: the field at fault, as the request spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Where problem type URIs live.
pub const PROBLEM_BASE: &str = "https://sagaflow.dev/problems/";

impl Problem {
    pub fn new(slug: &str, title: &str, status: u16, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// The problem type's last segment (`validation`, `not-found`, …).
    pub fn slug(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or(&self.kind)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}
