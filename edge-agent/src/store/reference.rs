//! The reference-data cache: the last accepted reference data, so a box that restarts offline
//! (or whose file is refused) still counts by it.

use kitchen_proto::reference::{AcceptMode, Floor, Reference, Station};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Replaces the cached reference data with `reference` (from `source`), in one transaction.
    pub fn save_reference(
        &mut self,
        reference: &Reference,
        source: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.transaction()?;
        tx.execute_batch(
            "DELETE FROM ref_otter_entities; DELETE FROM ref_pars; DELETE FROM ref_matches;
             DELETE FROM ref_items;
             DELETE FROM ref_stations; DELETE FROM ref_stores; DELETE FROM ref_day_parts;
             DELETE FROM ref_source;",
        )?;
        for (position, part) in reference.day_parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_day_parts (id, start_time, end_time, position)
                 VALUES (?1, ?2, ?3, ?4)",
                params![part.id, part.start, part.end, position],
            )?;
        }
        for (position, station) in reference.stations.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_stations (id, name, position, display) VALUES (?1, ?2, ?3, ?4)",
                params![
                    station.id,
                    station.name,
                    position,
                    station.display_to_stored()?
                ],
            )?;
        }
        for (position, store) in reference.stores.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_stores (store_id, brand, position, accept)
                 VALUES (?1, ?2, ?3, ?4)",
                params![store.store_id, store.brand, position, store.accept.as_str()],
            )?;
        }
        for (position, item) in reference.items.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_items (id, name, station_id, prep_seconds, position, par, unit,
                                        shelf_life_days)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    item.id,
                    item.name,
                    item.station,
                    item.prep_seconds,
                    position,
                    item.par,
                    item.unit,
                    item.shelf_life_days
                ],
            )?;
            for (day_part, quantity) in &item.par_by_day_part {
                tx.execute(
                    "INSERT INTO ref_pars (item_id, day_part, quantity) VALUES (?1, ?2, ?3)",
                    params![item.id, day_part, quantity],
                )?;
            }
            for (store_id, entity_ids) in &item.otter_entities {
                for (position, entity_id) in entity_ids.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO ref_otter_entities (item_id, store_id, position, entity_id)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![item.id, store_id, position, entity_id],
                    )?;
                }
            }
            for (position, key) in item.matches.iter().enumerate() {
                tx.execute(
                    "INSERT INTO ref_matches (item_id, position, key) VALUES (?1, ?2, ?3)",
                    params![item.id, position, key],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO ref_source (id, source, loaded_at, floor) VALUES (1, ?1, ?2, ?3)",
            params![source, now_ms, reference.floor.to_stored()?],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The cached reference data with its source and when it was loaded, if any (a cached copy
    /// that no longer validates counts as none).
    pub fn cached_reference(&self) -> Result<Option<(Reference, String, i64)>, StoreError> {
        let Some((source, loaded_at, floor)) = self
            .connection
            .query_row(
                "SELECT source, loaded_at, floor FROM ref_source WHERE id = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?
        else {
            return Ok(None);
        };
        let station_rows: Vec<(String, String, String)> = self
            .connection
            .prepare("SELECT id, name, display FROM ref_stations ORDER BY position")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        // A cached copy whose settings no longer read counts as none, like one that no longer
        // validates.
        let Ok(stations) = station_rows
            .into_iter()
            .map(|(id, name, display)| Station::from_stored(id, name, &display))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        let Ok(floor) = Floor::from_stored(&floor) else {
            return Ok(None);
        };
        let stores = self
            .connection
            .prepare("SELECT store_id, brand, accept FROM ref_stores ORDER BY position")?
            .query_map([], |row| {
                Ok(kitchen_proto::reference::OtterStore {
                    store_id: row.get(0)?,
                    brand: row.get(1)?,
                    accept: AcceptMode::from_name(&row.get::<_, String>(2)?).unwrap_or_default(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let day_parts = self
            .connection
            .prepare("SELECT id, start_time, end_time FROM ref_day_parts ORDER BY position")?
            .query_map([], |row| {
                Ok(kitchen_proto::reference::DayPart {
                    id: row.get(0)?,
                    start: row.get(1)?,
                    end: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut matches = self
            .connection
            .prepare("SELECT key FROM ref_matches WHERE item_id = ?1 ORDER BY position")?;
        let mut pars = self
            .connection
            .prepare("SELECT day_part, quantity FROM ref_pars WHERE item_id = ?1")?;
        let mut entities = self.connection.prepare(
            "SELECT store_id, entity_id FROM ref_otter_entities WHERE item_id = ?1
             ORDER BY store_id, position",
        )?;
        let mut items: Vec<kitchen_proto::reference::Item> = self
            .connection
            .prepare(
                "SELECT id, name, station_id, prep_seconds, par, unit, shelf_life_days
                 FROM ref_items ORDER BY position",
            )?
            .query_map([], |row| {
                Ok(kitchen_proto::reference::Item {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    station: row.get(2)?,
                    prep_seconds: row.get(3)?,
                    par: row.get(4)?,
                    unit: row.get(5)?,
                    shelf_life_days: row.get(6)?,
                    ..Default::default()
                })
            })?
            .collect::<Result<_, _>>()?;
        for item in &mut items {
            item.matches = matches
                .query_map([&item.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            item.par_by_day_part = pars
                .query_map([&item.id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for entity in entities.query_map([&item.id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })? {
                let (store_id, entity_id) = entity?;
                item.otter_entities
                    .entry(store_id)
                    .or_default()
                    .push(entity_id);
            }
        }
        Ok(Reference::new(stations, stores, items, day_parts)
            .and_then(|reference| reference.with_floor(floor))
            .ok()
            .map(|reference| (reference, source, loaded_at)))
    }
}
