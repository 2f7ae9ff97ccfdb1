//! Down: the kitchen's reference data, polled by version, validated and swapped in through the
//! writer.

use kitchen_daemon::clock::now_ms;
use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
};

use kitchen_proto::reference::{DayPart, Item, Reference, Station, Store as StoreRef};
use sqlx::{Executor, Postgres, Transaction};

use crate::status::ReferenceStatus;

use super::{Sync, SyncError};

/// Reads a kitchen's reference data from PostgreSQL; `Err(reason)` when it does not validate.
async fn load_reference(
    tx: &mut Transaction<'static, Postgres>,
    kitchen_id: &str,
) -> Result<Result<Reference, String>, sqlx::Error> {
    let day_parts = sqlx::query_as::<_, (String, String, String)>(
        "SELECT id, start_time, end_time FROM kitchen.ref_day_parts
         WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, start, end)| DayPart { id, start, end })
    .collect();
    let stations = sqlx::query_as::<_, (String, String)>(
        "SELECT id, name FROM kitchen.ref_stations WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, name)| Station { id, name })
    .collect();
    let stores = sqlx::query_as::<_, (String, String)>(
        "SELECT store_id, brand FROM kitchen.ref_stores WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(store_id, brand)| StoreRef { store_id, brand })
    .collect();
    let mut matches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (item_id, key) in sqlx::query_as::<_, (String, String)>(
        "SELECT item_id, key FROM kitchen.ref_matches WHERE kitchen_id = $1
         ORDER BY item_id, position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    {
        matches.entry(item_id).or_default().push(key);
    }
    let mut pars: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (item_id, day_part, quantity) in sqlx::query_as::<_, (String, String, i32)>(
        "SELECT item_id, day_part, quantity FROM kitchen.ref_pars WHERE kitchen_id = $1",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    {
        pars.entry(item_id)
            .or_default()
            .insert(day_part, quantity.max(0) as u32);
    }
    type ItemRow = (
        String,
        String,
        String,
        i32,
        Option<i32>,
        Option<String>,
        Option<i32>,
    );
    let items = sqlx::query_as::<_, ItemRow>(
        "SELECT id, name, station_id, prep_seconds, par, unit, shelf_life_days
         FROM kitchen.ref_items WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(
        |(id, name, station, prep_seconds, par, unit, shelf_life_days)| Item {
            matches: matches.remove(&id).unwrap_or_default(),
            par_by_day_part: pars.remove(&id).unwrap_or_default(),
            id,
            name,
            station,
            prep_seconds: prep_seconds.max(0) as u32,
            par: par.map(|p| p.max(0) as u32),
            unit,
            shelf_life_days: shelf_life_days.map(|d| d.max(0) as u32),
        },
    )
    .collect();
    Ok(Reference::new(stations, stores, items, day_parts).map_err(|e| e.to_string()))
}

impl Sync {
    /// Swaps in the kitchen's reference data when PostgreSQL has a version this box has not
    /// applied. A version that does not validate is refused (and said so) once.
    pub(super) async fn pull_reference(&self) -> Result<(), SyncError> {
        let current = self.stats.reference_version.load(Ordering::Relaxed);
        // One snapshot for the version and every table: the isolation level must be the
        // transaction's first statement.
        let mut tx = self.pool.begin().await?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(&self.kitchen_id)
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM kitchen.reference_versions WHERE kitchen_id = $1",
        )
        .bind(&self.kitchen_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version.filter(|v| *v != current) else {
            return Ok(());
        };
        let loaded = load_reference(&mut tx, &self.kitchen_id).await?;
        tx.commit().await?;
        self.stats
            .reference_version
            .store(version, Ordering::Relaxed);
        match loaded {
            Ok(reference) => {
                let reference = Arc::new(reference);
                let source = format!("postgresql version {version}");
                self.writer.set_reference(reference.clone(), source).await?;
                self.reference.set(
                    reference,
                    ReferenceStatus::Synced {
                        version,
                        at_ms: now_ms(),
                    },
                );
                tracing::info!(version, "reference data from postgresql in use");
            }
            Err(reason) => {
                tracing::warn!(version, %reason, "reference data in postgresql refused; keeping the current copy");
                self.reference
                    .refuse_update(format!("version {version}: {reason}"));
            }
        }
        Ok(())
    }
}
