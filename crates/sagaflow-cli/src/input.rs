//! Reading what the user hands the client commands: JSON files and `--input` values. Every
//! failure here is an [`Error::Input`] (exit code 2).

use std::io::Read;
use std::path::Path;

use sagaflow::DefinitionSpec;
use serde_json::Value;

use crate::error::Error;

/// Largest file or stdin the CLI reads; the server's own body limit is far below it.
const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Reads the definition in `path` (`-` for stdin). Only its JSON shape is checked here; the
/// server checks the rules and answers a problem naming the field.
pub fn definition_file(path: &Path) -> Result<DefinitionSpec, Error> {
    let shown = path.display();
    let bytes =
        read_limited(path).map_err(|e| Error::Input(format!("cannot read {shown}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input(format!("{shown} is not a valid definition: {e}")))
}

/// The saga input given to `--input`: inline JSON, or `@FILE` to read it from a file.
/// Nothing given is JSON `null`, as the API takes a left-out input.
pub fn saga_input(given: Option<&str>) -> Result<Value, Error> {
    let Some(given) = given else {
        return Ok(Value::Null);
    };
    match given.strip_prefix('@') {
        Some(file) => {
            let bytes = read_limited(Path::new(file))
                .map_err(|e| Error::Input(format!("cannot read --input file {file}: {e}")))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Input(format!("--input file {file} is not valid JSON: {e}")))
        }
        None => serde_json::from_str(given)
            .map_err(|e| Error::Input(format!("--input is not valid JSON: {e}"))),
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)?
    } else {
        std::fs::File::open(path)?
            .take(FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)?
    };
    if read as u64 > FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {FILE_BYTES_MAX} bytes"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_input_is_parsed() {
        assert_eq!(
            saga_input(Some(r#"{"sku":"A-1"}"#)).expect("valid JSON"),
            json!({"sku": "A-1"})
        );
        assert_eq!(saga_input(None).expect("nothing is null"), Value::Null);
    }

    #[test]
    fn invalid_inline_input_is_an_input_error() {
        let error = saga_input(Some("{sku")).expect_err("not JSON");
        assert!(matches!(error, Error::Input(_)));
        assert!(
            error
                .line()
                .starts_with("error: --input is not valid JSON: "),
            "{}",
            error.line()
        );
    }

    #[test]
    fn input_can_come_from_a_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("input.json");
        std::fs::write(&file, r#"{"refuse":"ship"}"#).expect("write the input");
        let given = format!("@{}", file.display());
        assert_eq!(
            saga_input(Some(&given)).expect("valid JSON"),
            json!({"refuse": "ship"})
        );
    }

    #[test]
    fn an_unreadable_file_is_an_input_error() {
        let error = definition_file(Path::new("/nonexistent/def.json")).expect_err("no such file");
        assert!(matches!(error, Error::Input(_)));
        assert!(
            error
                .line()
                .starts_with("error: cannot read /nonexistent/def.json: "),
            "{}",
            error.line()
        );
    }

    #[test]
    fn a_definition_file_that_is_not_json_is_an_input_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("def.json");
        std::fs::write(&file, "name: place-order").expect("write the file");
        let error = definition_file(&file).expect_err("not JSON");
        assert!(matches!(error, Error::Input(_)));
    }
}
