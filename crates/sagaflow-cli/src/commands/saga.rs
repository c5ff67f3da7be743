//! `sagaflow saga start | get | history | list | cancel | retry`.

use sagaflow::{Client, SagaView, StartSaga};

use crate::cli::SagaCommand;
use crate::error::Error;
use crate::{input, render};

/// Runs one `saga` command against the server behind `client`.
pub async fn run(client: &Client, command: SagaCommand) -> Result<String, Error> {
    match command {
        SagaCommand::Start {
            definition,
            input,
            version,
            idempotency_key,
            wait,
            json,
        } => {
            let start = StartSaga {
                definition,
                version,
                input: input::saga_input(input.as_deref())?,
            };
            let view = client
                .start_saga(&start, idempotency_key.as_deref(), wait)
                .await?;
            saga_answer(&view, json)
        }
        SagaCommand::Get { id, json } => {
            let view = client.get_saga(&id).await?;
            if json {
                render::json(&view)
            } else {
                Ok(render::saga(&view))
            }
        }
        SagaCommand::History { id, json } => {
            let history = client.history(&id).await?;
            if json {
                render::json(&history)
            } else {
                Ok(render::history(&history))
            }
        }
        SagaCommand::List {
            status,
            definition,
            limit,
            cursor,
            json,
        } => {
            let list = client
                .list_sagas(
                    status.as_deref(),
                    definition.as_deref(),
                    limit,
                    cursor.as_deref(),
                )
                .await?;
            if json {
                render::json(&list)
            } else {
                Ok(render::saga_list(&list))
            }
        }
        SagaCommand::Cancel { id, json } => saga_answer(&client.cancel(&id).await?, json),
        SagaCommand::Retry { id, json } => saga_answer(&client.retry(&id).await?, json),
    }
}

/// A saga that a command acted on: its id and status, or all of it as JSON.
fn saga_answer(view: &SagaView, json: bool) -> Result<String, Error> {
    if json {
        render::json(view)
    } else {
        Ok(render::saga_line(view))
    }
}
