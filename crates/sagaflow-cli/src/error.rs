//! The CLI's error: what went wrong, as the one line printed on stderr, and the exit code.

use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is unusable (an unreadable file, JSON that does not parse, a bad
    /// flag value): exit code 2, as for clap's own usage errors.
    #[error("{0}")]
    Input(String),
    /// The Sagaflow server could not be reached or refused the request: exit code 1.
    #[error(transparent)]
    Client(#[from] sagaflow::Error),
    /// The coordinator could not start or stopped on an error: exit code 1.
    #[error(transparent)]
    Server(#[from] sagaflow_server::Error),
    /// Anything else that stops the command (no runtime, no signal handler, stdout closed
    /// early): exit code 1.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The one line printed on stderr, starting with `error: `.
    pub fn line(&self) -> String {
        let message = match self {
            Error::Client(error) => client_message(error),
            other => other.to_string(),
        };
        format!("error: {}", one_line(&message))
    }

    /// The process's exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Input(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

fn client_message(error: &sagaflow::Error) -> String {
    match error {
        sagaflow::Error::Unreachable { url, message } => {
            format!("cannot reach the Sagaflow server at {url} ({message}); is it running?")
        }
        sagaflow::Error::Problem(problem) => {
            let mut message = format!("{} {}", problem.status, problem.title);
            if !problem.detail.trim().is_empty() {
                message.push_str(": ");
                message.push_str(problem.detail.trim());
            }
            if let Some(field) = &problem.field
                && !problem.detail.contains(field.as_str())
            {
                message.push_str(&format!(" (field {field})"));
            }
            message
        }
        other => other.to_string(),
    }
}

/// Newlines and runs of spaces become single spaces, so the message stays one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sagaflow::Problem;

    fn problem(status: u16, title: &str, detail: &str, field: Option<&str>) -> Error {
        Error::Client(sagaflow::Error::Problem(Problem {
            kind: "https://sagaflow.dev/problems/x".to_owned(),
            title: title.to_owned(),
            status,
            detail: detail.to_owned(),
            field: field.map(str::to_owned),
        }))
    }

    #[test]
    fn an_unreachable_server_asks_whether_it_runs() {
        let error = Error::Client(sagaflow::Error::Unreachable {
            url: "http://127.0.0.1:7070".to_owned(),
            message: "connection refused".to_owned(),
        });
        assert_eq!(
            error.line(),
            "error: cannot reach the Sagaflow server at http://127.0.0.1:7070 \
             (connection refused); is it running?"
        );
        assert_eq!(error.exit_code(), ExitCode::from(1));
    }

    #[test]
    fn a_problem_shows_status_title_and_detail() {
        let error = problem(404, "Not Found", "no saga 0193", None);
        assert_eq!(error.line(), "error: 404 Not Found: no saga 0193");
        assert_eq!(error.exit_code(), ExitCode::from(1));
    }

    #[test]
    fn a_problem_names_its_field_unless_the_detail_already_does() {
        let error = problem(
            422,
            "Invalid definition",
            "must not be empty",
            Some("steps"),
        );
        assert_eq!(
            error.line(),
            "error: 422 Invalid definition: must not be empty (field steps)"
        );
        let error = problem(
            422,
            "Invalid",
            "steps[0].name is required",
            Some("steps[0].name"),
        );
        assert_eq!(
            error.line(),
            "error: 422 Invalid: steps[0].name is required"
        );
    }

    #[test]
    fn a_problem_without_detail_is_status_and_title() {
        assert_eq!(
            problem(503, "Service Unavailable", " ", None).line(),
            "error: 503 Service Unavailable"
        );
    }

    #[test]
    fn a_multi_line_message_is_printed_on_one_line() {
        let error = problem(500, "Internal Server Error", "first\nsecond\n", None);
        assert_eq!(
            error.line(),
            "error: 500 Internal Server Error: first second"
        );
    }

    #[test]
    fn bad_input_exits_with_two() {
        let error = Error::Input("--input is not valid JSON: expected value".to_owned());
        assert_eq!(
            error.line(),
            "error: --input is not valid JSON: expected value"
        );
        assert_eq!(error.exit_code(), ExitCode::from(2));
    }
}
