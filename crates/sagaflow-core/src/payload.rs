//! Opaque JSON values (saga input, step outputs) carried through the state machine.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON document kept as validated text: cheap to clone, never re-parsed on the hot path.
#[derive(Clone)]
pub struct Payload(Arc<RawValue>);

impl Payload {
    /// Parses `text` as JSON. Errors when it is not a single valid JSON value.
    pub fn from_json(text: &str) -> Result<Payload, serde_json::Error> {
        let raw = RawValue::from_string(text.trim().to_owned())?;
        Ok(Payload(Arc::from(raw)))
    }

    /// The JSON `null`.
    pub fn null() -> Payload {
        Payload::from_value(&serde_json::Value::Null)
    }

    /// Encodes a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Payload {
        let text = value.to_string();
        // A serde_json::Value always prints as valid JSON.
        let raw = RawValue::from_string(text).expect("serde_json::Value prints valid JSON");
        Payload(Arc::from(raw))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text's length in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the JSON text is empty (never true for a valid value; here for clippy's sake).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// The raw value, to embed in a larger document without re-parsing.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// Parses the payload into a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(deserializer)?;
        Ok(Payload(Arc::from(raw)))
    }
}
