//! The ledger's decision, the same for every database: from what is recorded for a step, what
//! to do with a delivery.

use serde_json::{Value, json};

use super::Kind;
use super::outcome::problem;

/// An answer recorded in the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The HTTP status answered.
    pub status: u16,
    /// The body answered.
    pub body: Value,
}

/// What to do with a delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// A duplicate: answer the recorded answer again; change nothing.
    Replay(Recorded),
    /// Run the handler, record its answer in the same transaction.
    Run,
    /// Change nothing, but record this answer (so a later delivery gets it too) and send it.
    RecordOnly(Recorded),
}

/// Decides from the records of this step's action and compensation.
pub fn plan(kind: Kind, action: Option<&Recorded>, compensation: Option<&Recorded>) -> Plan {
    match kind {
        Kind::Action => match (action, compensation) {
            (Some(recorded), _) => Plan::Replay(recorded.clone()),
            // The saga already unwound this step: applying the action now would leak it.
            (None, Some(_)) => Plan::RecordOnly(Recorded {
                status: 409,
                body: problem(
                    409,
                    "compensated before it arrived",
                    "this step was compensated before its action arrived; nothing was applied",
                ),
            }),
            (None, None) => Plan::Run,
        },
        Kind::Compensation => match (compensation, action) {
            (Some(recorded), _) => Plan::Replay(recorded.clone()),
            (None, None) => Plan::RecordOnly(Recorded {
                status: 200,
                body: json!({"compensated": false, "reason": "the action never arrived"}),
            }),
            (None, Some(action)) if !(200..300).contains(&action.status) => {
                Plan::RecordOnly(Recorded {
                    status: 200,
                    body: json!({"compensated": false, "reason": "the action was refused"}),
                })
            }
            (None, Some(_)) => Plan::Run,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Recorded {
        Recorded {
            status: 200,
            body: json!({"ok": true}),
        }
    }

    fn refused() -> Recorded {
        Recorded {
            status: 422,
            body: json!({}),
        }
    }

    #[test]
    fn each_case_has_one_plan() {
        use Kind::*;
        let cases: Vec<(Kind, Option<Recorded>, Option<Recorded>, &str)> = vec![
            (Action, None, None, "run"),
            (Action, Some(ok()), None, "replay"),
            (Action, Some(ok()), Some(ok()), "replay"),
            (Action, None, Some(ok()), "record 409"),
            (Compensation, None, None, "record 200"),
            (Compensation, Some(ok()), None, "run"),
            (Compensation, Some(refused()), None, "record 200"),
            (Compensation, Some(ok()), Some(ok()), "replay"),
            (Compensation, None, Some(ok()), "replay"),
        ];
        for (kind, action, compensation, want) in cases {
            let got = match plan(kind, action.as_ref(), compensation.as_ref()) {
                Plan::Run => "run".to_owned(),
                Plan::Replay(_) => "replay".to_owned(),
                Plan::RecordOnly(r) => format!("record {}", r.status),
            };
            assert_eq!(
                got, want,
                "{kind:?} action={action:?} compensation={compensation:?}"
            );
        }
    }
}
