//! Definitions by name and version, cached in memory in front of the store.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use sagaflow_core::Definition;
use sagaflow_store::{DefinitionRecord, Store};

use super::EngineError;

/// Versions never change once stored, so a cached one is always right; the latest version is
/// asked of the store when it is not known.
#[derive(Default)]
pub struct Definitions {
    by_version: RwLock<HashMap<(String, u32), Arc<Definition>>>,
    latest: RwLock<HashMap<String, u32>>,
}

impl Definitions {
    /// Decodes a stored definition.
    pub fn decode(record: &DefinitionRecord) -> Result<Definition, EngineError> {
        let mut definition: Definition = serde_json::from_str(&record.body).map_err(|e| {
            EngineError::Internal(format!(
                "stored definition {} v{} does not decode: {e}",
                record.name, record.version
            ))
        })?;
        definition.version = record.version;
        Ok(definition)
    }

    /// Remembers a stored definition.
    pub fn remember(&self, definition: Arc<Definition>, is_latest: bool) {
        let key = (definition.name.clone(), definition.version);
        if is_latest {
            let mut latest = self.latest.write();
            let entry = latest.entry(definition.name.clone()).or_insert(0);
            *entry = (*entry).max(definition.version);
        }
        self.by_version.write().insert(key, definition);
    }

    /// The given version of `name`, or its latest; `None` when there is no such definition.
    pub async fn get(
        &self,
        store: &dyn Store,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Arc<Definition>>, EngineError> {
        let version = match version {
            Some(v) => Some(v),
            None => self.latest.read().get(name).copied(),
        };
        if let Some(v) = version
            && let Some(found) = self.by_version.read().get(&(name.to_owned(), v))
        {
            return Ok(Some(Arc::clone(found)));
        }
        let Some(record) = store.get_definition(name, version).await? else {
            return Ok(None);
        };
        let definition = Arc::new(Definitions::decode(&record)?);
        self.remember(Arc::clone(&definition), version.is_none());
        Ok(Some(definition))
    }
}
