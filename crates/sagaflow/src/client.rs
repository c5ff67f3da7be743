//! [`Client`]: one method per endpoint of the HTTP API.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sagaflow_api::{
    DefinitionCreated, DefinitionList, DefinitionSpec, HistoryList, SagaList, SagaView, StartSaga,
};

use crate::error::{Error, problem_from_answer, transport_reason};

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take, from sending to the end of the answer, on top of any
/// `wait_ms` the caller asked the server to hold the answer for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer body the client reads; a history of a long saga stays far below it.
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A full definition as `GET /v1/definitions/{name}` answers it: the spec with every default
/// spelled out, and the version it was registered as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefinitionView {
    /// The version, when the server states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The definition itself.
    #[serde(flatten)]
    pub spec: DefinitionSpec,
}

/// A typed client of one Sagaflow server. Cloning is cheap (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The base URL as the caller gave it, for error messages.
    base_shown: String,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7070`), with a 5 s
    /// connect timeout and a 30 s request timeout.
    pub fn new(base_url: &str) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sagaflow-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidUrl {
                url: base_url.to_owned(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Client::with_http_client(base_url, http)
    }

    /// A client of the server at `base_url` that sends its requests through `http` (for your
    /// own timeouts, proxies or TLS settings).
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Client, Error> {
        let invalid = |message: &str| Error::InvalidUrl {
            url: base_url.to_owned(),
            message: message.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("it has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it must not have a query or a fragment"));
        }
        Ok(Client {
            http,
            base,
            base_shown: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The server's base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base_shown
    }

    /// `POST /v1/definitions`: registers a definition. `created` is true when this made a new
    /// version, false when an identical definition was already registered.
    pub async fn apply_definition(
        &self,
        spec: &DefinitionSpec,
    ) -> Result<(DefinitionCreated, bool), Error> {
        let request = self
            .request(Method::POST, &["v1", "definitions"], &[])
            .json(spec);
        let (created, status) = self.call(request).await?;
        Ok((created, status == reqwest::StatusCode::CREATED))
    }

    /// `GET /v1/definitions/{name}`: a definition, its latest version unless `version` is
    /// given.
    pub async fn get_definition(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<DefinitionView, Error> {
        let version = version.map(|v| v.to_string());
        let query = optional_pairs(&[("version", version.as_deref())]);
        let request = self.request(Method::GET, &["v1", "definitions", name], &query);
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/definitions`: the latest version of every definition.
    pub async fn list_definitions(&self) -> Result<DefinitionList, Error> {
        let request = self.request(Method::GET, &["v1", "definitions"], &[]);
        Ok(self.call(request).await?.0)
    }

    /// `POST /v1/sagas`: starts a saga. With an `idempotency_key`, starting again with the
    /// same key and body returns the saga already started. With `wait_ms`, the server holds
    /// its answer until the saga ends or that many milliseconds pass.
    pub async fn start_saga(
        &self,
        start: &StartSaga,
        idempotency_key: Option<&str>,
        wait_ms: Option<u64>,
    ) -> Result<SagaView, Error> {
        let wait = wait_ms.map(|ms| ms.to_string());
        let query = optional_pairs(&[("wait_ms", wait.as_deref())]);
        let mut request = self
            .request(Method::POST, &["v1", "sagas"], &query)
            .json(start);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(ms) = wait_ms {
            request = request.timeout(REQUEST_TIMEOUT.saturating_add(Duration::from_millis(ms)));
        }
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/sagas/{id}`: a saga and its steps.
    pub async fn get_saga(&self, id: &str) -> Result<SagaView, Error> {
        let request = self.request(Method::GET, &["v1", "sagas", id], &[]);
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/sagas/{id}/history`: a saga's journal, oldest first.
    pub async fn history(&self, id: &str) -> Result<HistoryList, Error> {
        let request = self.request(Method::GET, &["v1", "sagas", id, "history"], &[]);
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/sagas`: a page of sagas, newest first, filtered by `status` and `definition`
    /// when given. Pass the answer's `next_cursor` as `cursor` for the next page.
    pub async fn list_sagas(
        &self,
        status: Option<&str>,
        definition: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<SagaList, Error> {
        let limit = limit.map(|l| l.to_string());
        let query = optional_pairs(&[
            ("status", status),
            ("definition", definition),
            ("limit", limit.as_deref()),
            ("cursor", cursor),
        ]);
        let request = self.request(Method::GET, &["v1", "sagas"], &query);
        Ok(self.call(request).await?.0)
    }

    /// `POST /v1/sagas/{id}/cancel`: the saga takes no new step and compensates what
    /// completed. A terminal saga answers `409`.
    pub async fn cancel(&self, id: &str) -> Result<SagaView, Error> {
        let request = self.request(Method::POST, &["v1", "sagas", id, "cancel"], &[]);
        Ok(self.call(request).await?.0)
    }

    /// `POST /v1/sagas/{id}/retry`: a `failed` saga resumes its compensations with fresh
    /// attempts. Any other status answers `409`.
    pub async fn retry(&self, id: &str) -> Result<SagaView, Error> {
        let request = self.request(Method::POST, &["v1", "sagas", id, "retry"], &[]);
        Ok(self.call(request).await?.0)
    }

    /// `GET /healthz`: `Ok` when the process is up.
    pub async fn healthz(&self) -> Result<(), Error> {
        self.probe(&["healthz"]).await
    }

    /// `GET /readyz`: `Ok` when the store is reachable and recovery is done.
    pub async fn readyz(&self) -> Result<(), Error> {
        self.probe(&["readyz"]).await
    }

    async fn probe(&self, path: &[&str]) -> Result<(), Error> {
        let request = self.request(Method::GET, path, &[]);
        let response = self.send(request).await?;
        self.read_body(response).await.map(drop)
    }

    /// A request to the base URL's path followed by `segments` (each percent-encoded).
    fn request(&self, method: Method, segments: &[&str], query: &[(&str, &str)]) -> RequestBuilder {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked to be a base at construction")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        request.send().await.map_err(|e| self.unreachable(&e))
    }

    /// Sends `request` and reads a `T` from a success answer.
    async fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(T, reqwest::StatusCode), Error> {
        let response = self.send(request).await?;
        let status = response.status();
        let url = response.url().to_string();
        let body = self.read_body(response).await?;
        let value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url,
            message: e.to_string(),
        })?;
        Ok((value, status))
    }

    /// The body of a success answer, or the error an error answer stands for.
    async fn read_body(&self, mut response: Response) -> Result<Vec<u8>, Error> {
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(Error::Decode {
                    url: response.url().to_string(),
                    message: format!("the answer is larger than {ANSWER_BYTES_MAX} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            Ok(body)
        } else {
            Err(Error::Problem(problem_from_answer(status.as_u16(), &body)))
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> Error {
        Error::Unreachable {
            url: self.base_shown.clone(),
            message: transport_reason(error),
        }
    }
}

/// The pairs whose value is present.
fn optional_pairs<'a>(pairs: &[(&'a str, Option<&'a str>)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(client: &Client, segments: &[&str], query: &[(&str, &str)]) -> String {
        let request = client
            .request(Method::GET, segments, query)
            .build()
            .expect("a request to a checked base URL builds");
        request.url().to_string()
    }

    #[test]
    fn paths_are_appended_to_the_base_and_percent_encoded() {
        let client = Client::new("http://127.0.0.1:7070").expect("valid URL");
        assert_eq!(
            url_of(&client, &["v1", "definitions", "place order/2"], &[]),
            "http://127.0.0.1:7070/v1/definitions/place%20order%2F2"
        );
        let prefixed = Client::new("http://host/sagaflow/").expect("valid URL");
        assert_eq!(
            url_of(
                &prefixed,
                &["v1", "sagas"],
                &[("status", "failed"), ("cursor", "a&b")]
            ),
            "http://host/sagaflow/v1/sagas?status=failed&cursor=a%26b"
        );
        assert_eq!(prefixed.base_url(), "http://host/sagaflow");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for url in [
            "127.0.0.1:7070",
            "ftp://host",
            "mailto:a@b",
            "http://host/?q=1",
            "",
        ] {
            assert!(
                matches!(Client::new(url), Err(Error::InvalidUrl { .. })),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn only_present_pairs_are_kept() {
        assert_eq!(
            optional_pairs(&[("a", Some("1")), ("b", None), ("c", Some("3"))]),
            vec![("a", "1"), ("c", "3")]
        );
    }

    #[test]
    fn a_definition_view_reads_the_version_beside_the_spec() {
        let view: DefinitionView = serde_json::from_str(
            r#"{"name":"place-order","version":3,"steps":[{"name":"a","action":{"url":"http://x/"}}]}"#,
        )
        .expect("a definition parses");
        assert_eq!(view.version, Some(3));
        assert_eq!(view.spec.name.as_deref(), Some("place-order"));
        assert_eq!(view.spec.steps.as_ref().map(Vec::len), Some(1));
    }
}
