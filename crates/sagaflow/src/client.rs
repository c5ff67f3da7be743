//! [`Client`]: one method per endpoint of the HTTP API.

use std::time::{Duration, SystemTime};

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sagaflow_api::{
    DefinitionCreated, DefinitionList, DefinitionSpec, HistoryList, SagaList, SagaView, StartSaga,
};

use crate::error::{Error, error_from_answer, transport_reason};
use crate::retry::{Backoff, RetryBudget, RetryDecision, Retryable};

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

/// A typed client of one Sagaflow server. Cloning is cheap (the connection pool and the
/// retry budget are shared).
///
/// # Retries
///
/// By default each method makes one attempt. A client built with
/// [`with_retry`](Client::with_retry) retries transient failures (the server unreachable or
/// timing out; 408, 425, 429, 502, 503 and 504 answers, after their `Retry-After`), but only
/// where repeating the request cannot act twice:
///
/// | call | retried after |
/// | --- | --- |
/// | every `GET` (`get_*`, `list_*`, `history`, `healthz`, `readyz`) | any transient failure |
/// | [`apply_definition`](Client::apply_definition) | any transient failure: the server registers an identical definition once |
/// | [`start_saga`](Client::start_saga) with an `Idempotency-Key` | any transient failure: the server answers a repeat with the saga already started |
/// | [`start_saga`](Client::start_saga) without a key, [`cancel`](Client::cancel), [`retry`](Client::retry) | only failures that prove the server did not act |
///
/// A failure "proves the server did not act" when the connection could not be made (the
/// request was never sent), or the answer is 429 Too Many Requests, 425 Too Early or
/// Sagaflow's own `shutting-down` problem, all of which refuse a request before acting on it.
/// A timeout, a reset connection, a 502, 503 or 504 (which a proxy may send after passing the
/// request on) leave it unknown whether the server acted: repeating a start then could start
/// a second saga, and repeating a cancel or a retry that did take effect answers `409`,
/// turning a success into an error. Those are returned to the caller, who can read the saga
/// to find out.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The base URL as the caller gave it, for error messages.
    base_shown: String,
    /// `None`: one attempt per call.
    retry: Option<Backoff>,
    /// Shared by the clones of this client; only consulted when `retry` is set.
    retry_budget: RetryBudget,
}

/// Whether a request may be sent again after a failure that leaves unknown whether the server
/// acted on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Doing it twice has the effect of doing it once.
    Safe,
    /// Doing it twice may act twice, or answer differently: repeat only when the server
    /// surely did not act.
    IfUnprocessed,
}

/// A success answer: its status, the URL it came from and its body.
struct Answer {
    status: StatusCode,
    url: String,
    body: Vec<u8>,
}

/// Why one attempt failed, with what deciding on a retry needs beyond the error.
struct AttemptError {
    error: Error,
    /// The connection could not be made, so the request was never sent.
    unsent: bool,
    repeat: Repeat,
}

impl Retryable for AttemptError {
    fn retry_decision(&self) -> RetryDecision {
        let decision = self.error.retry_decision();
        match self.repeat {
            Repeat::Safe => decision,
            Repeat::IfUnprocessed if self.unsent || refused_unprocessed(&self.error) => decision,
            Repeat::IfUnprocessed => RetryDecision::DoNotRetry,
        }
    }
}

/// Whether the server's answer says it refused the request without acting on it.
fn refused_unprocessed(error: &Error) -> bool {
    const SHUTTING_DOWN: &str = "https://sagaflow.dev/problems/shutting-down";
    error
        .problem()
        .is_some_and(|p| matches!(p.status, 425 | 429) || p.kind == SHUTTING_DOWN)
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
            retry: None,
            retry_budget: RetryBudget::default(),
        })
    }

    /// This client, retrying transient failures of the calls that are safe to repeat
    /// according to `backoff` (see [Retries](Client#retries)). The retries draw on a
    /// [`RetryBudget`] shared by this client and its clones, [`RetryBudget::default`] unless
    /// [`with_retry_budget`](Client::with_retry_budget) gives another.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sagaflow::Client;
    /// use sagaflow::retry::Backoff;
    ///
    /// # async fn example() -> Result<(), sagaflow::Error> {
    /// let client = Client::new("http://127.0.0.1:7070")?
    ///     .with_retry(Backoff::default().with_max_elapsed(Some(Duration::from_secs(10))));
    /// let saga = client.get_saga("0193a8").await?; // retried if the server is restarting
    /// println!("{}", saga.status);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_retry(mut self, backoff: Backoff) -> Client {
        self.retry = Some(backoff);
        self
    }

    /// This client, drawing its retries on `budget`: pass the same budget (or a clone of it)
    /// to several clients of one server so that together they cannot amplify its outage.
    ///
    /// ```
    /// use sagaflow::Client;
    /// use sagaflow::retry::{Backoff, RetryBudget};
    ///
    /// # fn example() -> Result<(), sagaflow::Error> {
    /// let budget = RetryBudget::new(20, 0.1);
    /// let client = Client::new("http://127.0.0.1:7070")?
    ///     .with_retry(Backoff::default())
    ///     .with_retry_budget(budget.clone());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_retry_budget(mut self, budget: RetryBudget) -> Client {
        self.retry_budget = budget;
        self
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
        // Safe to repeat: the server registers an identical definition once. After a retry,
        // `created` is false if the attempt whose answer was lost had created it.
        let request = || {
            self.request(Method::POST, &["v1", "definitions"], &[])
                .json(spec)
        };
        let (created, status) = self.call(Repeat::Safe, request).await?;
        Ok((created, status == StatusCode::CREATED))
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
        let request = || self.request(Method::GET, &["v1", "definitions", name], &query);
        Ok(self.call(Repeat::Safe, request).await?.0)
    }

    /// `GET /v1/definitions`: the latest version of every definition.
    pub async fn list_definitions(&self) -> Result<DefinitionList, Error> {
        let request = || self.request(Method::GET, &["v1", "definitions"], &[]);
        Ok(self.call(Repeat::Safe, request).await?.0)
    }

    /// `POST /v1/sagas`: starts a saga. With an `idempotency_key`, starting again with the
    /// same key and body returns the saga already started. With `wait_ms`, the server holds
    /// its answer until the saga ends or that many milliseconds pass.
    ///
    /// With retries on ([`with_retry`](Client::with_retry)), a start with an
    /// `idempotency_key` is retried after any transient failure; one without is retried only
    /// when the server surely did not start it (see [Retries](Client#retries)).
    pub async fn start_saga(
        &self,
        start: &StartSaga,
        idempotency_key: Option<&str>,
        wait_ms: Option<u64>,
    ) -> Result<SagaView, Error> {
        let wait = wait_ms.map(|ms| ms.to_string());
        let query = optional_pairs(&[("wait_ms", wait.as_deref())]);
        let request = || {
            let mut request = self
                .request(Method::POST, &["v1", "sagas"], &query)
                .json(start);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(ms) = wait_ms {
                request =
                    request.timeout(REQUEST_TIMEOUT.saturating_add(Duration::from_millis(ms)));
            }
            request
        };
        let repeat = match idempotency_key {
            Some(_) => Repeat::Safe,
            None => Repeat::IfUnprocessed,
        };
        Ok(self.call(repeat, request).await?.0)
    }

    /// `GET /v1/sagas/{id}`: a saga and its steps.
    pub async fn get_saga(&self, id: &str) -> Result<SagaView, Error> {
        let request = || self.request(Method::GET, &["v1", "sagas", id], &[]);
        Ok(self.call(Repeat::Safe, request).await?.0)
    }

    /// `GET /v1/sagas/{id}/history`: a saga's journal, oldest first.
    pub async fn history(&self, id: &str) -> Result<HistoryList, Error> {
        let request = || self.request(Method::GET, &["v1", "sagas", id, "history"], &[]);
        Ok(self.call(Repeat::Safe, request).await?.0)
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
        let request = || self.request(Method::GET, &["v1", "sagas"], &query);
        Ok(self.call(Repeat::Safe, request).await?.0)
    }

    /// `POST /v1/sagas/{id}/cancel`: the saga takes no new step and compensates what
    /// completed. A terminal saga answers `409`.
    ///
    /// With retries on, it is retried only when the server surely did not act: a repeat of a
    /// cancel that took effect would answer `409` (see [Retries](Client#retries)).
    pub async fn cancel(&self, id: &str) -> Result<SagaView, Error> {
        let request = || self.request(Method::POST, &["v1", "sagas", id, "cancel"], &[]);
        Ok(self.call(Repeat::IfUnprocessed, request).await?.0)
    }

    /// `POST /v1/sagas/{id}/retry`: a `failed` saga resumes its compensations with fresh
    /// attempts. Any other status answers `409`.
    ///
    /// With retries on, it is retried only when the server surely did not act: a repeat of a
    /// retry that took effect would answer `409` (see [Retries](Client#retries)).
    pub async fn retry(&self, id: &str) -> Result<SagaView, Error> {
        let request = || self.request(Method::POST, &["v1", "sagas", id, "retry"], &[]);
        Ok(self.call(Repeat::IfUnprocessed, request).await?.0)
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
        let request = || self.request(Method::GET, path, &[]);
        self.fetch(Repeat::Safe, request).await.map(drop)
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

    /// Sends the request `request` builds (once per attempt) and reads a `T` from the
    /// success answer.
    async fn call<T: DeserializeOwned>(
        &self,
        repeat: Repeat,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<(T, StatusCode), Error> {
        let answer = self.fetch(repeat, request).await?;
        let value = serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
            url: answer.url,
            message: e.to_string(),
        })?;
        Ok((value, answer.status))
    }

    /// The success answer to the request `request` builds: one attempt, or as many as the
    /// retry policy allows when the client has one and `repeat` permits.
    async fn fetch(
        &self,
        repeat: Repeat,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, Error> {
        let result = match &self.retry {
            None => self.attempt(request(), repeat).await,
            Some(backoff) => {
                crate::retry::retry(backoff, Some(&self.retry_budget), || {
                    self.attempt(request(), repeat)
                })
                .await
            }
        };
        result.map_err(|failure| failure.error)
    }

    /// One attempt: sends `request` and reads the answer.
    async fn attempt(
        &self,
        request: RequestBuilder,
        repeat: Repeat,
    ) -> Result<Answer, AttemptError> {
        let response = request.send().await.map_err(|e| AttemptError {
            error: self.unreachable(&e),
            unsent: e.is_connect(),
            repeat,
        })?;
        let status = response.status();
        let url = response.url().to_string();
        let body = self
            .read_body(response)
            .await
            .map_err(|error| AttemptError {
                error,
                unsent: false,
                repeat,
            })?;
        Ok(Answer { status, url, body })
    }

    /// The body of a success answer, or the error an error answer stands for.
    async fn read_body(&self, mut response: Response) -> Result<Vec<u8>, Error> {
        let status = response.status();
        // Kept before the body is read; only an error answer's is used.
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
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
            Err(error_from_answer(
                status.as_u16(),
                &body,
                retry_after.as_deref(),
                SystemTime::now(),
            ))
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

    fn problem(status: u16, kind: &str) -> Error {
        Error::Problem(sagaflow_api::Problem {
            kind: kind.to_owned(),
            title: "x".to_owned(),
            status,
            detail: String::new(),
            field: None,
        })
    }

    fn decision(error: Error, unsent: bool, repeat: Repeat) -> RetryDecision {
        AttemptError {
            error,
            unsent,
            repeat,
        }
        .retry_decision()
    }

    #[test]
    fn safe_calls_follow_the_errors_own_decision() {
        let timed_out = || Error::Unreachable {
            url: "http://x".to_owned(),
            message: "timed out".to_owned(),
        };
        assert_eq!(
            decision(timed_out(), false, Repeat::Safe),
            RetryDecision::Retry
        );
        assert_eq!(
            decision(problem(502, "about:blank"), false, Repeat::Safe),
            RetryDecision::Retry
        );
        assert_eq!(
            decision(problem(409, "about:blank"), false, Repeat::Safe),
            RetryDecision::DoNotRetry
        );
    }

    #[test]
    fn unsafe_calls_are_retried_only_when_the_server_surely_did_not_act() {
        let reset = || Error::Unreachable {
            url: "http://x".to_owned(),
            message: "connection reset".to_owned(),
        };
        let check = |error: Error, unsent: bool, expected: RetryDecision| {
            let shown = format!("{error:?} unsent={unsent}");
            assert_eq!(
                decision(error, unsent, Repeat::IfUnprocessed),
                expected,
                "{shown}"
            );
        };
        check(reset(), true, RetryDecision::Retry);
        check(reset(), false, RetryDecision::DoNotRetry);
        check(problem(429, "about:blank"), false, RetryDecision::Retry);
        check(problem(425, "about:blank"), false, RetryDecision::Retry);
        check(
            problem(503, "https://sagaflow.dev/problems/shutting-down"),
            false,
            RetryDecision::Retry,
        );
        for status in [408, 502, 503, 504] {
            check(
                problem(status, "about:blank"),
                false,
                RetryDecision::DoNotRetry,
            );
        }
        // Refused, but not transient: still not retried.
        check(problem(404, "about:blank"), true, RetryDecision::DoNotRetry);
    }

    #[test]
    fn retries_are_off_by_default() {
        let client = Client::new("http://127.0.0.1:7070").expect("valid URL");
        assert_eq!(client.retry, None);
        let client = client.with_retry(Backoff::default());
        assert_eq!(client.retry, Some(Backoff::default()));
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
