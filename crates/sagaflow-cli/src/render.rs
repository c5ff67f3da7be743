//! How the client commands show the API's answers to people (the `--json` forms print the
//! answers as they are).

use sagaflow::{DefinitionList, HistoryList, SagaList, SagaView, StepView};

use crate::error::Error;
use crate::table::{self, EMPTY_CELL};

/// `value` as indented JSON, ending with a newline (the `--json` forms).
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("cannot print the answer as JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// A saga: its header lines, a blank line, then one row per step.
pub fn saga(view: &SagaView) -> String {
    let mut fields = vec![
        ("id", view.id.clone()),
        (
            "definition",
            format!("{} v{}", view.definition, view.version),
        ),
        ("status", view.status.clone()),
        ("created", view.created_at.clone()),
        ("updated", view.updated_at.clone()),
    ];
    if let Some(deadline) = &view.deadline_at {
        fields.push(("deadline", deadline.clone()));
    }
    if let Some(error) = &view.error {
        fields.push(("error", error.clone()));
    }
    let mut out = table::render_fields(&fields);
    out.push('\n');
    let rows: Vec<Vec<String>> = view.steps.iter().map(step_row).collect();
    out.push_str(&table::render(
        &["STEP", "STATUS", "ATTEMPTS", "COMPENSATION", "ERROR"],
        &rows,
    ));
    out
}

fn step_row(step: &StepView) -> Vec<String> {
    let compensation = match &step.compensation {
        None => EMPTY_CELL.to_owned(),
        Some(c) if c.status == "none" => EMPTY_CELL.to_owned(),
        Some(c) if c.attempts == 0 => c.status.clone(),
        Some(c) => format!(
            "{} ({} {})",
            c.status,
            c.attempts,
            attempts_word(c.attempts)
        ),
    };
    let compensation_error = step.compensation.as_ref().and_then(|c| c.error.as_deref());
    let error = match (step.error.as_deref(), compensation_error) {
        (Some(action), Some(undo)) => format!("{action}; compensation: {undo}"),
        (Some(action), None) => action.to_owned(),
        (None, Some(undo)) => format!("compensation: {undo}"),
        (None, None) => String::new(),
    };
    vec![
        step.name.clone(),
        step.status.clone(),
        step.attempts.to_string(),
        compensation,
        error,
    ]
}

fn attempts_word(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

/// One line for a saga that was just started, cancelled or retried: its id and status.
pub fn saga_line(view: &SagaView) -> String {
    format!("{} {}\n", view.id, view.status)
}

/// A page of sagas, and the cursor of the next page when there is one.
pub fn saga_list(list: &SagaList) -> String {
    let mut out = if list.items.is_empty() {
        "no sagas\n".to_owned()
    } else {
        let rows: Vec<Vec<String>> = list
            .items
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    format!("{} v{}", s.definition, s.version),
                    s.status.clone(),
                    s.created_at.clone(),
                    s.updated_at.clone(),
                ]
            })
            .collect();
        table::render(&["ID", "DEFINITION", "STATUS", "CREATED", "UPDATED"], &rows)
    };
    if let Some(cursor) = &list.next_cursor {
        out.push_str(&format!("next cursor: {cursor}\n"));
    }
    out
}

/// A saga's journal, oldest first.
pub fn history(list: &HistoryList) -> String {
    if list.items.is_empty() {
        return "no history\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.event.clone(),
                e.step.clone().unwrap_or_default(),
                e.phase.clone().unwrap_or_default(),
                e.attempt.map(|a| a.to_string()).unwrap_or_default(),
                e.detail.clone(),
            ]
        })
        .collect();
    table::render(
        &["AT", "EVENT", "STEP", "PHASE", "ATTEMPT", "DETAIL"],
        &rows,
    )
}

/// The latest version of every definition.
pub fn definition_list(list: &DefinitionList) -> String {
    if list.items.is_empty() {
        return "no definitions\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.version.to_string(),
                d.steps.to_string(),
                d.created_at.clone(),
            ]
        })
        .collect();
    table::render(&["NAME", "VERSION", "STEPS", "CREATED"], &rows)
}

/// Registering a definition: whether it made a new version.
pub fn applied(name: &str, version: u32, created: bool) -> String {
    if created {
        format!("registered {name} v{version}\n")
    } else {
        format!("{name} v{version} unchanged\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sagaflow::{CompensationView, SagaSummary};
    use serde_json::Value;

    fn step(name: &str, status: &str, attempts: u32, error: Option<&str>) -> StepView {
        StepView {
            name: name.to_owned(),
            status: status.to_owned(),
            attempts,
            output: Value::Null,
            error: error.map(str::to_owned),
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            compensation: None,
        }
    }

    fn compensation(status: &str, attempts: u32, error: Option<&str>) -> Option<CompensationView> {
        Some(CompensationView {
            status: status.to_owned(),
            attempts,
            error: error.map(str::to_owned),
            next_attempt_at: None,
        })
    }

    #[test]
    fn a_saga_shows_its_header_then_its_steps() {
        let view = SagaView {
            id: "0193a".to_owned(),
            definition: "place-order".to_owned(),
            version: 3,
            status: "compensated".to_owned(),
            input: Value::Null,
            created_at: "2026-11-24T11:25:22.000Z".to_owned(),
            updated_at: "2026-11-24T11:25:23.500Z".to_owned(),
            deadline_at: None,
            error: Some("step charge-card failed: 422 card declined".to_owned()),
            trace_id: String::new(),
            steps: vec![
                StepView {
                    compensation: compensation("succeeded", 1, None),
                    ..step("reserve-stock", "compensated", 1, None)
                },
                StepView {
                    compensation: compensation("pending", 0, None),
                    ..step("charge-card", "failed", 1, Some("422 card declined"))
                },
                step("ship", "skipped", 0, None),
            ],
        };
        assert_eq!(
            saga(&view),
            "\
id          0193a
definition  place-order v3
status      compensated
created     2026-11-24T11:25:22.000Z
updated     2026-11-24T11:25:23.500Z
error       step charge-card failed: 422 card declined

STEP           STATUS       ATTEMPTS  COMPENSATION           ERROR
reserve-stock  compensated  1         succeeded (1 attempt)  -
charge-card    failed       1         pending                422 card declined
ship           skipped      0         -                      -
"
        );
    }

    #[test]
    fn a_step_row_names_a_compensation_error_apart_from_the_action_error() {
        let row = step_row(&StepView {
            compensation: compensation("failed", 20, Some("503 unavailable")),
            ..step("charge-card", "succeeded", 2, None)
        });
        assert_eq!(row[3], "failed (20 attempts)");
        assert_eq!(row[4], "compensation: 503 unavailable");
    }

    #[test]
    fn a_saga_list_ends_with_the_next_cursor() {
        let list = SagaList {
            items: vec![SagaSummary {
                id: "0193b".to_owned(),
                definition: "place-order".to_owned(),
                version: 1,
                status: "running".to_owned(),
                created_at: "c".to_owned(),
                updated_at: "u".to_owned(),
            }],
            next_cursor: Some("abc".to_owned()),
        };
        assert_eq!(
            saga_list(&list),
            "ID     DEFINITION      STATUS   CREATED  UPDATED\n\
             0193b  place-order v1  running  c        u\n\
             next cursor: abc\n"
        );
    }

    #[test]
    fn an_empty_list_says_so() {
        let list = SagaList {
            items: vec![],
            next_cursor: None,
        };
        assert_eq!(saga_list(&list), "no sagas\n");
        assert_eq!(
            definition_list(&DefinitionList { items: vec![] }),
            "no definitions\n"
        );
    }

    #[test]
    fn applying_tells_new_from_unchanged() {
        assert_eq!(
            applied("place-order", 3, true),
            "registered place-order v3\n"
        );
        assert_eq!(
            applied("place-order", 3, false),
            "place-order v3 unchanged\n"
        );
    }
}
