//! A kitchen's reference data in PostgreSQL (`kitchen.ref_*`, `kitchen.reference_versions`).
//!
//! An import replaces all of a kitchen's rows in one transaction, bumps its version and
//! notifies `kitchen_reference` with the kitchen id (delivered at commit). A reader takes the
//! version and the rows in one REPEATABLE READ transaction, so it never sees half an import;
//! the box polls the version and re-reads when it changed. Those reads are
//! `kitchen_cloud_schema`'s, so the relay's export and the box read the same way.
//!
//! Order is kept by `position` (the index in the file), so an export writes the file back in
//! the order it was imported.

use kitchen_proto::reference::Reference;
use sqlx::{PgConnection, PgPool};

use super::KitchenError;

/// The channel an import notifies, with the kitchen id as payload.
pub const REFERENCE_CHANNEL: &str = "kitchen_reference";

/// A reference as column arrays, checked to fit the columns. `position` is the index in the
/// file (`WITH ORDINALITY` in the statements), except for matches, which count per item.
#[derive(Default)]
struct Rows<'a> {
    day_part_ids: Vec<&'a str>,
    day_part_starts: Vec<&'a str>,
    day_part_ends: Vec<&'a str>,
    station_ids: Vec<&'a str>,
    station_names: Vec<&'a str>,
    station_displays: Vec<String>,
    floor: String,
    store_ids: Vec<&'a str>,
    store_brands: Vec<&'a str>,
    store_accepts: Vec<&'static str>,
    item_ids: Vec<&'a str>,
    item_names: Vec<&'a str>,
    item_stations: Vec<&'a str>,
    item_prep_seconds: Vec<i32>,
    item_pars: Vec<Option<i32>>,
    item_units: Vec<Option<&'a str>>,
    item_shelf_lives: Vec<Option<i32>>,
    match_items: Vec<&'a str>,
    match_positions: Vec<i32>,
    match_keys: Vec<&'a str>,
    par_items: Vec<&'a str>,
    par_day_parts: Vec<&'a str>,
    par_quantities: Vec<i32>,
    entity_items: Vec<&'a str>,
    entity_stores: Vec<&'a str>,
    entity_ids: Vec<&'a str>,
    entity_positions: Vec<i32>,
}

impl<'a> Rows<'a> {
    fn of(reference: &'a Reference) -> Result<Self, KitchenError> {
        let mut rows = Self::default();
        for part in &reference.day_parts {
            rows.day_part_ids.push(&part.id);
            rows.day_part_starts.push(&part.start);
            rows.day_part_ends.push(&part.end);
        }
        for station in &reference.stations {
            rows.station_ids.push(&station.id);
            rows.station_names.push(&station.name);
            rows.station_displays.push(station.display_to_stored()?);
        }
        rows.floor = reference.floor.to_stored()?;
        for store in &reference.stores {
            rows.store_ids.push(&store.store_id);
            rows.store_brands.push(&store.brand);
            rows.store_accepts.push(store.accept.as_str());
        }
        for item in &reference.items {
            let int = |field: &'static str, value: u32| {
                i32::try_from(value).map_err(|_| KitchenError::OutOfRange {
                    item_id: item.id.clone(),
                    field,
                    value,
                })
            };
            rows.item_ids.push(&item.id);
            rows.item_names.push(&item.name);
            rows.item_stations.push(&item.station);
            rows.item_prep_seconds
                .push(int("prep_seconds", item.prep_seconds)?);
            rows.item_pars
                .push(item.par.map(|par| int("par", par)).transpose()?);
            rows.item_units.push(item.unit.as_deref());
            rows.item_shelf_lives.push(
                item.shelf_life_days
                    .map(|days| int("shelf_life_days", days))
                    .transpose()?,
            );
            for (position, key) in (0..).zip(&item.matches) {
                rows.match_items.push(&item.id);
                rows.match_positions.push(position);
                rows.match_keys.push(key);
            }
            for (store_id, ids) in &item.otter_entities {
                for (position, id) in (0..).zip(ids) {
                    rows.entity_items.push(&item.id);
                    rows.entity_stores.push(store_id);
                    rows.entity_ids.push(id);
                    rows.entity_positions.push(position);
                }
            }
            for (day_part, &quantity) in &item.par_by_day_part {
                rows.par_items.push(&item.id);
                rows.par_day_parts.push(day_part);
                rows.par_quantities.push(int("par_by_day_part", quantity)?);
            }
        }
        Ok(rows)
    }
}

/// Whether the kitchen has been provisioned.
pub async fn kitchen_exists(
    connection: &mut PgConnection,
    kitchen_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM kitchen.kitchens WHERE kitchen_id = $1)")
        .bind(kitchen_id)
        .fetch_one(connection)
        .await
}

/// Replaces the kitchen's reference data with `reference` and bumps its version, in one
/// transaction (concurrent imports of one kitchen queue on its version row), then notifies
/// [`REFERENCE_CHANNEL`] with the kitchen id. Returns the new version (1 for the first import).
/// Nothing changes when it fails.
pub async fn import_reference(
    pool: &PgPool,
    kitchen_id: &str,
    reference: &Reference,
) -> Result<i64, KitchenError> {
    let rows = Rows::of(reference)?;
    let mut tx = pool.begin().await?;
    if !kitchen_exists(&mut tx, kitchen_id).await? {
        return Err(KitchenError::UnknownKitchen {
            kitchen_id: kitchen_id.to_owned(),
        });
    }
    // First, so that the version row is locked before anything else is touched.
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO kitchen.reference_versions AS v (kitchen_id, version, floor)
         VALUES ($1, 1, $2)
         ON CONFLICT (kitchen_id) DO UPDATE
             SET version = v.version + 1, updated_at = now(), floor = excluded.floor
         RETURNING version",
    )
    .bind(kitchen_id)
    .bind(&rows.floor)
    .fetch_one(&mut *tx)
    .await?;
    // Items first: their matches, PAR levels and Otter entity ids go with them (ON DELETE
    // CASCADE).
    for table in ["ref_items", "ref_stations", "ref_stores", "ref_day_parts"] {
        sqlx::query(&format!(
            "DELETE FROM kitchen.{table} WHERE kitchen_id = $1"
        ))
        .bind(kitchen_id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO kitchen.ref_day_parts (kitchen_id, id, start_time, end_time, position)
         SELECT $1, id, start_time, end_time, n - 1
         FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
              AS t(id, start_time, end_time, n)",
    )
    .bind(kitchen_id)
    .bind(&rows.day_part_ids)
    .bind(&rows.day_part_starts)
    .bind(&rows.day_part_ends)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_stations (kitchen_id, id, name, display, position)
         SELECT $1, id, name, display, n - 1
         FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
              AS t(id, name, display, n)",
    )
    .bind(kitchen_id)
    .bind(&rows.station_ids)
    .bind(&rows.station_names)
    .bind(&rows.station_displays)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_stores (kitchen_id, store_id, brand, accept, position)
         SELECT $1, store_id, brand, accept, n - 1
         FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
              AS t(store_id, brand, accept, n)",
    )
    .bind(kitchen_id)
    .bind(&rows.store_ids)
    .bind(&rows.store_brands)
    .bind(&rows.store_accepts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_items
             (kitchen_id, id, name, station_id, prep_seconds, par, unit, shelf_life_days, position)
         SELECT $1, id, name, station_id, prep_seconds, par, unit, shelf_life_days, n - 1
         FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::integer[],
                     $7::text[], $8::integer[]) WITH ORDINALITY
              AS t(id, name, station_id, prep_seconds, par, unit, shelf_life_days, n)",
    )
    .bind(kitchen_id)
    .bind(&rows.item_ids)
    .bind(&rows.item_names)
    .bind(&rows.item_stations)
    .bind(&rows.item_prep_seconds)
    .bind(&rows.item_pars)
    .bind(&rows.item_units)
    .bind(&rows.item_shelf_lives)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_matches (kitchen_id, item_id, position, key)
         SELECT $1, item_id, position, key
         FROM unnest($2::text[], $3::integer[], $4::text[]) AS t(item_id, position, key)",
    )
    .bind(kitchen_id)
    .bind(&rows.match_items)
    .bind(&rows.match_positions)
    .bind(&rows.match_keys)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_pars (kitchen_id, item_id, day_part, quantity)
         SELECT $1, item_id, day_part, quantity
         FROM unnest($2::text[], $3::text[], $4::integer[]) AS t(item_id, day_part, quantity)",
    )
    .bind(kitchen_id)
    .bind(&rows.par_items)
    .bind(&rows.par_day_parts)
    .bind(&rows.par_quantities)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO kitchen.ref_otter_entities
             (kitchen_id, item_id, store_id, entity_id, position)
         SELECT $1, item_id, store_id, entity_id, position
         FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[])
              AS t(item_id, store_id, entity_id, position)",
    )
    .bind(kitchen_id)
    .bind(&rows.entity_items)
    .bind(&rows.entity_stores)
    .bind(&rows.entity_ids)
    .bind(&rows.entity_positions)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(REFERENCE_CHANNEL)
        .bind(kitchen_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(version)
}

/// The kitchen's reference and its version, or `None` when none was imported (or the kitchen
/// is unknown — or, for a kitchen box, not its own: row-level security hides the rows).
///
/// Run it in a REPEATABLE READ transaction (as [`export_reference`] does) so the version and
/// every table come from one snapshot; `&mut tx` of a `sqlx::Transaction` derefs to the
/// connection. The reads are `kitchen_cloud_schema`'s, the ones a kitchen box runs too.
pub async fn load_reference(
    connection: &mut PgConnection,
    kitchen_id: &str,
) -> Result<Option<(Reference, i64)>, KitchenError> {
    let Some(version) = kitchen_cloud_schema::reference_version(connection, kitchen_id).await?
    else {
        return Ok(None);
    };
    let reference = kitchen_cloud_schema::load_reference(connection, kitchen_id).await?;
    Ok(Some((reference, version)))
}

/// The kitchen's reference and version read in one REPEATABLE READ, read-only transaction;
/// `None` when the kitchen has none yet, an error when the kitchen is unknown.
pub async fn export_reference(
    pool: &PgPool,
    kitchen_id: &str,
) -> Result<Option<(Reference, i64)>, KitchenError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let loaded = load_reference(&mut tx, kitchen_id).await?;
    if loaded.is_none() && !kitchen_exists(&mut tx, kitchen_id).await? {
        return Err(KitchenError::UnknownKitchen {
            kitchen_id: kitchen_id.to_owned(),
        });
    }
    tx.commit().await?;
    Ok(loaded)
}
