//! The demo's data directory: where the coordinator's journal, each service's database and
//! the logs live, and `demo.json`, the manifest that lets `sagaflow demo --check` find the
//! databases (a PostgreSQL schema included) and the orders later.
//!
//! ```text
//! DIR/coordinator/      the coordinator's journal (sagaflow server --data-dir)
//! DIR/orders.db …       each service's SQLite file (unless it is on PostgreSQL)
//! DIR/logs/*.log        each process's output
//! DIR/demo.json         this manifest
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sagaflow_shop::{Service, Target};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The manifest's file name in the data directory.
const MANIFEST_FILE: &str = "demo.json";

/// The files of one data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_owned(),
        }
    }

    /// The coordinator's `--data-dir`.
    pub fn coordinator_dir(&self) -> PathBuf {
        self.root.join("coordinator")
    }

    /// Where the processes' output goes.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A service's SQLite file.
    pub fn sqlite_db(&self, service: Service) -> PathBuf {
        self.root.join(format!("{service}.db"))
    }

    fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// Creates the directories.
    pub fn create(&self) -> Result<(), Error> {
        std::fs::create_dir_all(self.logs_dir()).map_err(|e| {
            Error::Input(format!(
                "cannot create the data directory {}: {e}",
                self.root.display()
            ))
        })
    }
}

/// Where one service keeps its data: its `--db` and `--pg-schema`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// A SQLite file's path or a PostgreSQL URL.
    pub db: String,
    /// The PostgreSQL schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_schema: Option<String>,
}

impl Store {
    /// As a database target.
    pub fn target(&self) -> Result<Target, Error> {
        Target::parse(&self.db, self.pg_schema.as_deref())
            .map_err(|e| Error::Input(format!("store {:?}: {e}", self.db)))
    }

    /// Whether it is a PostgreSQL schema of the demo's own.
    pub fn pg(&self) -> Option<(&str, &str)> {
        self.pg_schema
            .as_deref()
            .map(|schema| (self.db.as_str(), schema))
    }
}

/// What a data directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Names the demo's PostgreSQL schemas (`sagaflow_demo_<store_id>_<service>`).
    pub store_id: String,
    /// Each service's store, by service name.
    pub stores: BTreeMap<Service, Store>,
    /// Every order the demo started in this directory, over all its runs.
    pub orders: Vec<String>,
}

impl Manifest {
    /// A new manifest: each service on its SQLite file in `layout`, except payments on
    /// `payments_store` and every service on `store_all` (PostgreSQL URLs) when given.
    pub fn new(
        layout: &Layout,
        store_id: &str,
        payments_store: Option<&str>,
        store_all: Option<&str>,
    ) -> Result<Manifest, Error> {
        let mut stores = BTreeMap::new();
        for service in Service::ALL {
            let url = match service {
                Service::Payments => payments_store.or(store_all),
                _ => store_all,
            };
            let store = match url {
                Some(url) => Store {
                    db: url.to_owned(),
                    pg_schema: Some(format!("sagaflow_demo_{store_id}_{service}")),
                },
                None => {
                    let path = layout.sqlite_db(service);
                    let db = path.to_str().ok_or_else(|| {
                        Error::Input(format!("{} is not valid UTF-8", path.display()))
                    })?;
                    Store {
                        db: db.to_owned(),
                        pg_schema: None,
                    }
                }
            };
            // Refuse a bad URL or schema now, not in a child's log.
            store.target()?;
            stores.insert(service, store);
        }
        Ok(Manifest {
            store_id: store_id.to_owned(),
            stores,
            orders: Vec::new(),
        })
    }

    /// The store of `service`.
    pub fn store(&self, service: Service) -> Result<&Store, Error> {
        self.stores.get(&service).ok_or_else(|| {
            Error::Input(format!("the demo's manifest names no store for {service}"))
        })
    }

    /// Reads the manifest of `layout`, if there is one.
    pub fn load(layout: &Layout) -> Result<Option<Manifest>, Error> {
        let path = layout.manifest();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Input(format!("cannot read {}: {e}", path.display()))),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Input(format!("{} is not a demo manifest: {e}", path.display())))
    }

    /// Writes it (to a temporary file first, so a crash leaves the old one whole).
    pub fn save(&self, layout: &Layout) -> Result<(), Error> {
        let path = layout.manifest();
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Other(format!("cannot encode the manifest: {e}")))?;
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_gets_its_own_file_unless_told_postgres() {
        let layout = Layout::new(Path::new("/data"));
        let m = Manifest::new(&layout, "ab12", None, None).expect("a manifest");
        assert_eq!(m.stores[&Service::Orders].db, "/data/orders.db");
        assert!(m.stores.values().all(|s| s.pg_schema.is_none()));

        let url = "postgres://u@127.0.0.1/db";
        let m = Manifest::new(&layout, "ab12", Some(url), None).expect("a manifest");
        assert_eq!(m.stores[&Service::Payments].db, url);
        assert_eq!(
            m.stores[&Service::Payments].pg_schema.as_deref(),
            Some("sagaflow_demo_ab12_payments")
        );
        assert_eq!(m.stores[&Service::Shipping].db, "/data/shipping.db");

        let m = Manifest::new(&layout, "ab12", None, Some(url)).expect("a manifest");
        assert!(m.stores.values().all(|s| s.db == url));
    }

    #[test]
    fn a_manifest_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let layout = Layout::new(dir.path());
        assert_eq!(Manifest::load(&layout).expect("no manifest yet"), None);
        let mut m = Manifest::new(&layout, "ab12", None, None).expect("a manifest");
        m.orders.push("o-1".to_owned());
        m.save(&layout).expect("saved");
        assert_eq!(Manifest::load(&layout).expect("read back"), Some(m));
    }
}
