//! `sagaflow def apply | list | get`.

use sagaflow::Client;

use crate::cli::DefCommand;
use crate::error::Error;
use crate::{input, render};

/// Runs one `def` command against the server behind `client`.
pub async fn run(client: &Client, command: DefCommand) -> Result<String, Error> {
    match command {
        DefCommand::Apply { file } => {
            let spec = input::definition_file(&file)?;
            let (registered, created) = client.apply_definition(&spec).await?;
            Ok(render::applied(
                &registered.name,
                registered.version,
                created,
            ))
        }
        DefCommand::List => Ok(render::definition_list(&client.list_definitions().await?)),
        DefCommand::Get { name, version } => {
            let definition = client.get_definition(&name, version).await?;
            render::json(&definition)
        }
    }
}
