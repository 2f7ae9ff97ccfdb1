//! What the kitchen told Otter and what came of it (migration 0008): each order's accepted prep
//! time, the relay's calls read back from PostgreSQL, items 86'd, staff PINs, sync cursors.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::record::OtterCall;

/// An open order as the Otter actions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderForOtter {
    pub store_id: String,
    pub state: String,
    pub prep_minutes: Option<u32>,
    pub ready: bool,
}

pub fn order_for_otter(
    connection: &Connection,
    order_id: &str,
) -> Result<Option<OrderForOtter>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT store_id, state, prep_minutes, ready_at IS NOT NULL FROM orders
             WHERE order_id = ?1",
            [order_id],
            |row| {
                Ok(OrderForOtter {
                    store_id: row.get(0)?,
                    state: row.get(1)?,
                    prep_minutes: row.get(2)?,
                    ready: row.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Records the prep time given to Otter (the first one is the acceptance).
pub fn set_prep_minutes(
    connection: &Connection,
    order_id: &str,
    minutes: u32,
    now_ms: i64,
) -> Result<(), StoreError> {
    connection.execute(
        "UPDATE orders SET prep_minutes = ?2, accepted_at = coalesce(accepted_at, ?3),
                           updated_at = ?3
         WHERE order_id = ?1",
        params![order_id, minutes, now_ms],
    )?;
    Ok(())
}

/// Takes an order off the screens: handed off (`closed`) or cancelled.
pub fn close_order(
    connection: &Connection,
    order_id: &str,
    state: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    connection.execute(
        "UPDATE orders SET state = ?2, updated_at = ?3 WHERE order_id = ?1 AND state = 'open'",
        params![order_id, state, now_ms],
    )?;
    Ok(())
}

/// The calls made for an order, oldest first.
pub fn order_calls(connection: &Connection, order_id: &str) -> Result<Vec<OtterCall>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT record_id, store_id, kind, order_id, item_id, state, detail FROM otter_calls
         WHERE order_id = ?1 ORDER BY change_id",
    )?;
    let calls = statement
        .query_map([order_id], call)?
        .collect::<Result<_, _>>()?;
    Ok(calls)
}

fn call(row: &rusqlite::Row<'_>) -> rusqlite::Result<OtterCall> {
    Ok(OtterCall {
        record_id: row.get(0)?,
        store_id: row.get(1)?,
        kind: row.get(2)?,
        order_id: row.get(3)?,
        item_id: row.get(4)?,
        state: row.get(5)?,
        detail: row.get(6)?,
    })
}

/// A call as read back from PostgreSQL: its change number there and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChange {
    pub call: OtterCall,
    pub change_id: i64,
    pub at_ms: i64,
}

/// Takes in calls read back from PostgreSQL, oldest change first, and the position read to;
/// the calls whose state or detail changed.
pub fn save_calls(
    connection: &Connection,
    calls: &[CallChange],
    change_id: i64,
) -> Result<Vec<OtterCall>, StoreError> {
    let mut changed = Vec::new();
    let mut upsert = connection.prepare_cached(
        "INSERT INTO otter_calls (record_id, store_id, kind, order_id, item_id, state, detail,
                                  change_id, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (record_id, store_id, kind) DO UPDATE SET
             state = excluded.state, detail = excluded.detail, change_id = excluded.change_id,
             updated_at = excluded.updated_at
         WHERE otter_calls.state <> excluded.state OR otter_calls.detail <> excluded.detail",
    )?;
    for CallChange {
        call,
        change_id,
        at_ms,
    } in calls
    {
        let rows = upsert.execute(params![
            call.record_id,
            call.store_id,
            call.kind,
            call.order_id,
            call.item_id,
            call.state,
            call.detail,
            change_id,
            at_ms
        ])?;
        if rows > 0 {
            changed.push(call.clone());
        }
    }
    set_cursor(connection, "otter_calls", change_id)?;
    Ok(changed)
}

fn set_cursor(connection: &Connection, name: &str, value: i64) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO sync_cursors (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

/// An item 86'd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub suspension_id: String,
    pub item_id: String,
    pub until_ms: Option<i64>,
    pub note: String,
    pub device: String,
    pub staff: Option<String>,
    pub created_at_ms: i64,
}

pub fn insert_suspension(connection: &Connection, s: &Suspension) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO suspensions (suspension_id, item_id, until_ms, note, device, staff, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.suspension_id,
            s.item_id,
            s.until_ms,
            s.note,
            s.device,
            s.staff,
            s.created_at_ms
        ],
    )?;
    Ok(())
}

/// Lifts an item's suspensions (put back on); the ones lifted.
pub fn lift_suspension(
    connection: &Connection,
    item_id: &str,
    by: &str,
    now_ms: i64,
) -> Result<Vec<Suspension>, StoreError> {
    let active = suspensions(connection, Some(item_id), now_ms)?;
    connection.execute(
        "UPDATE suspensions SET lifted_at = ?2, lifted_by = ?3
         WHERE item_id = ?1 AND lifted_at IS NULL",
        params![item_id, now_ms, by],
    )?;
    Ok(active)
}

/// Items 86'd at `now_ms` (all, or one item's), oldest first. A suspension whose time ran out
/// is over without a record: Otter ends a timed one by itself.
pub fn suspensions(
    connection: &Connection,
    item_id: Option<&str>,
    now_ms: i64,
) -> Result<Vec<Suspension>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT suspension_id, item_id, until_ms, note, device, staff, created_at
         FROM suspensions
         WHERE lifted_at IS NULL AND (until_ms IS NULL OR until_ms > ?2)
           AND (?1 IS NULL OR item_id = ?1)
         ORDER BY created_at, suspension_id",
    )?;
    let rows = statement
        .query_map(params![item_id, now_ms], |row| {
            Ok(Suspension {
                suspension_id: row.get(0)?,
                item_id: row.get(1)?,
                until_ms: row.get(2)?,
                note: row.get(3)?,
                device: row.get(4)?,
                staff: row.get(5)?,
                created_at_ms: row.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

impl Store {
    /// The last position read from one of PostgreSQL's streams (0: none yet).
    pub fn sync_cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT value FROM sync_cursors WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Items a batch is being made of now.
    pub fn batching_items(&self) -> Result<Vec<String>, StoreError> {
        Ok(super::open_sessions(&self.connection)?
            .into_iter()
            .map(|session| session.item_id)
            .collect())
    }

    /// Items 86'd now.
    pub fn suspensions(&self, now_ms: i64) -> Result<Vec<Suspension>, StoreError> {
        suspensions(&self.connection, None, now_ms)
    }

    /// The calls made for 86s of an item, newest first (for the displays).
    pub fn item_calls(&self, item_id: &str) -> Result<Vec<OtterCall>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT record_id, store_id, kind, order_id, item_id, state, detail FROM otter_calls
             WHERE item_id = ?1 ORDER BY change_id DESC LIMIT 20",
        )?;
        let calls = statement
            .query_map([item_id], call)?
            .collect::<Result<_, _>>()?;
        Ok(calls)
    }

    /// Adds a staff member with a PIN (hashed by the caller); false if the name or PIN is taken.
    pub fn add_staff(
        &mut self,
        name: &str,
        pin_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self.connection.execute(
            "INSERT INTO staff (name, pin_hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![name, pin_hash, now_ms],
        )?;
        Ok(inserted == 1)
    }

    pub fn remove_staff(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM staff WHERE name = ?1", [name])?
            == 1)
    }

    pub fn staff_names(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT name FROM staff ORDER BY name")?;
        let names = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }

    /// Whether the kitchen uses PINs, and whose this PIN hash is.
    pub fn staff_by_pin(&self, pin_hash: &str) -> Result<(bool, Option<String>), StoreError> {
        let any: bool =
            self.connection
                .query_row("SELECT EXISTS (SELECT 1 FROM staff)", [], |row| row.get(0))?;
        let name = self
            .connection
            .query_row(
                "SELECT name FROM staff WHERE pin_hash = ?1",
                [pin_hash],
                |row| row.get(0),
            )
            .optional()?;
        Ok((any, name))
    }
}
