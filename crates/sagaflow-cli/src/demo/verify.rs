//! What the invariant check reads: every service's tables straight from its own database, and
//! every `place-order` saga from the coordinator (its API while it runs, its journal when it
//! does not).

use std::path::Path;

use futures::StreamExt;
use sagaflow::{Client, SagaView};
use sagaflow_shop::check::SagaRow;
use sagaflow_shop::saga::PLACE_ORDER;
use sagaflow_shop::{Service, Snapshot, read_snapshot};
use sagaflow_store::Store;
use sagaflow_store::sqlite::{SqliteConfig, SqliteStore};

use super::manifest::Manifest;
use crate::error::Error;

/// Sagas per page when listing.
const PAGE_LIMIT: u32 = 500;
/// Most pages read: far more sagas than a demo starts; a bound against a cursor that loops.
const PAGES_MAX: usize = 100_000;
/// Saga reads in flight at once.
const READS_IN_FLIGHT_MAX: usize = 16;

/// A saga, and the attempts of its steps beyond the first (actions and compensations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaFacts {
    /// As the check needs it.
    pub row: SagaRow,
    /// Step attempts beyond the first.
    pub retries: u64,
}

/// Every `place-order` saga, from the running coordinator's API.
pub async fn sagas_from_coordinator(client: &Client) -> Result<Vec<SagaFacts>, Error> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..PAGES_MAX {
        let page = client
            .list_sagas(None, Some(PLACE_ORDER), Some(PAGE_LIMIT), cursor.as_deref())
            .await?;
        ids.extend(page.items.into_iter().map(|s| s.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let views: Vec<Result<SagaView, sagaflow::Error>> = futures::stream::iter(&ids)
        .map(|id| client.get_saga(id))
        .buffer_unordered(READS_IN_FLIGHT_MAX)
        .collect()
        .await;
    views.into_iter().map(|view| Ok(facts(&view?))).collect()
}

fn facts(view: &SagaView) -> SagaFacts {
    let beyond_first = |attempts: u32| u64::from(attempts.saturating_sub(1));
    let retries = view
        .steps
        .iter()
        .map(|step| {
            beyond_first(step.attempts)
                + step
                    .compensation
                    .as_ref()
                    .map_or(0, |c| beyond_first(c.attempts))
        })
        .sum();
    SagaFacts {
        row: SagaRow {
            saga_id: view.id.clone(),
            order_id: view.input["order_id"].as_str().map(str::to_owned),
            status: view.status.clone(),
        },
        retries,
    }
}

/// Every `place-order` saga, from the coordinator's journal in `dir` (the coordinator must
/// not be running on it). Each saga's order is its `Idempotency-Key`, which the demo sets to
/// the order id.
pub async fn sagas_from_journal(dir: &Path) -> Result<Vec<SagaRow>, Error> {
    if !dir.exists() {
        return Err(Error::Input(format!(
            "no coordinator journal in {}",
            dir.display()
        )));
    }
    let store = SqliteStore::open(dir, SqliteConfig::default())
        .map_err(|e| Error::Other(format!("cannot open the journal in {}: {e}", dir.display())))?;
    let journal = |e: sagaflow_store::Error| Error::Other(format!("reading the journal: {e}"));
    let mut rows = Vec::new();
    let mut cursor = None;
    for _ in 0..PAGES_MAX {
        let page = store
            .list_sagas(sagaflow_store::ListFilter {
                status: None,
                definition: Some(PLACE_ORDER.to_owned()),
                limit: PAGE_LIMIT as usize,
                cursor,
            })
            .await
            .map_err(journal)?;
        rows.extend(page.items.into_iter().map(|r| SagaRow {
            saga_id: r.id,
            order_id: r.idempotency_key,
            status: r.status.as_str().to_owned(),
        }));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    store.close().await.map_err(journal)?;
    Ok(rows)
}

/// Every service's tables, read from its own database (never through the service).
pub async fn snapshot(manifest: &Manifest) -> Result<Snapshot, Error> {
    let mut all = Snapshot::default();
    for service in Service::ALL {
        let target = manifest.store(service)?.target()?;
        let part = read_snapshot(service, &target).await.map_err(|e| {
            Error::Other(format!(
                "cannot read the {service} database ({}): {e}",
                target.describe()
            ))
        })?;
        all.merge(part);
    }
    Ok(all)
}
