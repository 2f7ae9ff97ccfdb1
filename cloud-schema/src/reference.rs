//! A kitchen's reference data as stored in `kitchen.ref_*` with its version in
//! `kitchen.reference_versions`: the relay reads it back for an export, a kitchen box to swap
//! in a new version.
//!
//! Run both reads in one REPEATABLE READ transaction (`SET TRANSACTION ISOLATION LEVEL
//! REPEATABLE READ, READ ONLY` as its first statement), so the version and every table come
//! from one snapshot and an import is seen whole or not at all. A kitchen box's role must
//! also name its kitchen in that transaction ([`crate::set_tenant`]); otherwise row-level
//! security hides every row and the version reads as absent.

use std::collections::BTreeMap;

use kitchen_proto::reference::{
    AcceptMode, DayPart, Floor, Item, OtterStore, Reference, ReferenceError, Station,
};
use sqlx::PgConnection;

/// Why a stored reference could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The rows do not make a valid reference (`Reference::new` refused them, or a number
    /// does not fit its field).
    #[error("kitchen {kitchen_id:?}: the stored reference is invalid: {source}")]
    Invalid {
        kitchen_id: String,
        source: ReferenceError,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The kitchen's reference version; `None` when nothing was imported for it (or the kitchen
/// is unknown, or, for a kitchen box, not the tenant it named).
pub async fn reference_version(
    connection: &mut PgConnection,
    kitchen_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM kitchen.reference_versions WHERE kitchen_id = $1")
        .bind(kitchen_id)
        .fetch_optional(connection)
        .await
}

/// The kitchen's reference rows, in the order they were imported (`position`), validated by
/// `Reference::new`. Read it in the snapshot that read [`reference_version`] (see the module
/// documentation); `&mut tx` of a `sqlx::Transaction` derefs to the connection.
pub async fn load_reference(
    connection: &mut PgConnection,
    kitchen_id: &str,
) -> Result<Reference, LoadError> {
    let day_parts = sqlx::query_as::<_, (String, String, String)>(
        "SELECT id, start_time, end_time FROM kitchen.ref_day_parts
         WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .map(|(id, start, end)| DayPart { id, start, end })
    .collect();
    let invalid = |source| LoadError::Invalid {
        kitchen_id: kitchen_id.to_owned(),
        source,
    };
    let stations = sqlx::query_as::<_, (String, String, String)>(
        "SELECT id, name, display FROM kitchen.ref_stations
         WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .map(|(id, name, display)| Station::from_stored(id, name, &display))
    .collect::<Result<Vec<_>, _>>()
    .map_err(invalid)?;
    // No version row: nothing was imported, and every table is empty too.
    let floor: String =
        sqlx::query_scalar("SELECT floor FROM kitchen.reference_versions WHERE kitchen_id = $1")
            .bind(kitchen_id)
            .fetch_optional(&mut *connection)
            .await?
            .unwrap_or_default();
    let floor = Floor::from_stored(&floor).map_err(invalid)?;
    let stores = sqlx::query_as::<_, (String, String, String)>(
        "SELECT store_id, brand, accept FROM kitchen.ref_stores
         WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .map(|(store_id, brand, accept)| {
        // The column's CHECK allows only these two names.
        let accept = AcceptMode::from_name(&accept).ok_or_else(|| {
            ReferenceError::Invalid(format!("store {store_id:?}: accept mode {accept:?}"))
        })?;
        Ok(OtterStore {
            store_id,
            brand,
            accept,
        })
    })
    .collect::<Result<Vec<_>, ReferenceError>>()
    .map_err(invalid)?;
    // Each item's Otter menu entity ids per store, in the file's order.
    let mut entities: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let entity_rows = sqlx::query_as::<_, (String, String, String)>(
        "SELECT item_id, store_id, entity_id FROM kitchen.ref_otter_entities
         WHERE kitchen_id = $1 ORDER BY item_id, store_id, position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut *connection)
    .await?;
    for (item_id, store_id, entity_id) in entity_rows {
        entities
            .entry(item_id)
            .or_default()
            .entry(store_id)
            .or_default()
            .push(entity_id);
    }
    let item_rows: Vec<ItemRow> = sqlx::query_as(
        "SELECT i.id, i.name, i.station_id, i.prep_seconds, i.par, i.unit, i.shelf_life_days,
                array(SELECT m.key FROM kitchen.ref_matches m
                      WHERE m.kitchen_id = i.kitchen_id AND m.item_id = i.id
                      ORDER BY m.position) AS matches,
                array(SELECT p.day_part FROM kitchen.ref_pars p
                      WHERE p.kitchen_id = i.kitchen_id AND p.item_id = i.id
                      ORDER BY p.day_part) AS par_day_parts,
                array(SELECT p.quantity FROM kitchen.ref_pars p
                      WHERE p.kitchen_id = i.kitchen_id AND p.item_id = i.id
                      ORDER BY p.day_part) AS par_quantities
         FROM kitchen.ref_items i
         WHERE i.kitchen_id = $1
         ORDER BY i.position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut *connection)
    .await?;
    let items = item_rows
        .into_iter()
        .map(|row| {
            let otter_entities = entities.remove(&row.id).unwrap_or_default();
            row.into_item()
                .map(|item| Item {
                    otter_entities,
                    ..item
                })
                .map_err(ReferenceError::Invalid)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    Reference::new(stations, stores, items, day_parts)
        .and_then(|reference| reference.with_floor(floor))
        .map_err(invalid)
}

/// A `kitchen.ref_items` row with its matches (by position) and PAR levels (by day part).
#[derive(Debug, sqlx::FromRow)]
struct ItemRow {
    id: String,
    name: String,
    station_id: String,
    prep_seconds: i32,
    par: Option<i32>,
    unit: Option<String>,
    shelf_life_days: Option<i32>,
    matches: Vec<String>,
    par_day_parts: Vec<String>,
    par_quantities: Vec<i32>,
}

impl ItemRow {
    /// The item; `Err(reason)` for a negative number, which the table's CHECK constraints
    /// rule out: refused rather than clamped, so a broken database is never served as data.
    fn into_item(self) -> Result<Item, String> {
        let unsigned = |field: &str, value: i32| {
            u32::try_from(value).map_err(|_| format!("item {:?}: {field} {value}", self.id))
        };
        let par_by_day_part = self
            .par_day_parts
            .iter()
            .cloned()
            .zip(self.par_quantities.iter())
            .map(|(part, &quantity)| Ok((part, unsigned("par_by_day_part", quantity)?)))
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        Ok(Item {
            prep_seconds: unsigned("prep_seconds", self.prep_seconds)?,
            par: self.par.map(|par| unsigned("par", par)).transpose()?,
            shelf_life_days: self
                .shelf_life_days
                .map(|days| unsigned("shelf_life_days", days))
                .transpose()?,
            par_by_day_part,
            id: self.id,
            name: self.name,
            station: self.station_id,
            matches: self.matches,
            unit: self.unit,
            otter_entities: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ItemRow {
        ItemRow {
            id: "fries".into(),
            name: "Fries".into(),
            station_id: "fry".into(),
            prep_seconds: 180,
            par: Some(20),
            unit: Some("bag".into()),
            shelf_life_days: None,
            matches: vec!["otter-fries".into(), "SKU-9".into()],
            par_day_parts: vec!["dinner".into(), "lunch".into()],
            par_quantities: vec![12, 8],
        }
    }

    #[test]
    fn rows_become_items_and_negative_numbers_are_refused() {
        let check = |change: fn(&mut ItemRow), expected: Result<Item, &str>| {
            let mut item_row = row();
            change(&mut item_row);
            assert_eq!(item_row.into_item(), expected.map_err(str::to_owned));
        };
        let fries = Item {
            id: "fries".into(),
            name: "Fries".into(),
            station: "fry".into(),
            matches: vec!["otter-fries".into(), "SKU-9".into()],
            prep_seconds: 180,
            par: Some(20),
            unit: Some("bag".into()),
            shelf_life_days: None,
            par_by_day_part: BTreeMap::from([("dinner".into(), 12), ("lunch".into(), 8)]),
            otter_entities: BTreeMap::new(),
        };
        check(|_| {}, Ok(fries.clone()));
        check(
            |r| (r.shelf_life_days, r.par, r.unit) = (Some(2), None, None),
            Ok(Item {
                shelf_life_days: Some(2),
                par: None,
                unit: None,
                ..fries.clone()
            }),
        );
        check(
            |r| (r.par_day_parts, r.par_quantities, r.matches) = (vec![], vec![], vec![]),
            Ok(Item {
                par_by_day_part: BTreeMap::new(),
                matches: vec![],
                ..fries
            }),
        );
        check(
            |r| r.prep_seconds = -1,
            Err("item \"fries\": prep_seconds -1"),
        );
        check(|r| r.par = Some(-2), Err("item \"fries\": par -2"));
        check(
            |r| r.shelf_life_days = Some(-3),
            Err("item \"fries\": shelf_life_days -3"),
        );
        check(
            |r| r.par_quantities[1] = -4,
            Err("item \"fries\": par_by_day_part -4"),
        );
    }
}
