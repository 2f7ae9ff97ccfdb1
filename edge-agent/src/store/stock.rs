//! Prep stock: lots (labelled containers, received product units, transfer units) and
//! transfers between kitchens.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::record::{Lot, Transfer};

fn day_text(date: Option<chrono::NaiveDate>) -> Option<String> {
    date.map(|d| d.format("%Y-%m-%d").to_string())
}

pub(super) fn day_from_text(text: Option<String>) -> Option<chrono::NaiveDate> {
    text.and_then(|t| chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok())
}

pub(super) const LOT_COLUMNS: &str =
    "stock_id, item_id, source, label, quantity, lot, prepared_on, use_by,
    added_at, added_by, closed_at, closed_as, closed_by";

pub(super) fn lot_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lot> {
    Ok(Lot {
        stock_id: row.get(0)?,
        item_id: row.get(1)?,
        source: row.get(2)?,
        label: row.get(3)?,
        quantity: row.get(4)?,
        lot: row.get(5)?,
        prepared_on: day_from_text(row.get(6)?),
        use_by: day_from_text(row.get(7)?),
        added_at_ms: row.get(8)?,
        added_by: row.get(9)?,
        closed_at_ms: row.get(10)?,
        closed_as: row.get(11)?,
        closed_by: row.get(12)?,
    })
}

/// Records new stock (added by the scan `scan_id`).
pub fn insert_stock(
    tx: &Transaction<'_>,
    lot: &Lot,
    scan_id: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO stock (stock_id, item_id, source, label, quantity, lot, prepared_on, use_by,
                            added_at, added_by, scan_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        lot.stock_id,
        lot.item_id,
        lot.source,
        lot.label,
        lot.quantity,
        lot.lot,
        day_text(lot.prepared_on),
        day_text(lot.use_by),
        lot.added_at_ms,
        lot.added_by,
        scan_id
    ])?;
    Ok(())
}

/// The stock with this label, open or closed.
pub fn stock_by_label(connection: &Connection, label: &str) -> Result<Option<Lot>, StoreError> {
    Ok(connection
        .prepare_cached(&format!("SELECT {LOT_COLUMNS} FROM stock WHERE label = ?1"))?
        .query_row([label], lot_from_row)
        .optional()?)
}

pub fn stock(connection: &Connection, stock_id: &str) -> Result<Option<Lot>, StoreError> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock WHERE stock_id = ?1"
        ))?
        .query_row([stock_id], lot_from_row)
        .optional()?)
}

/// Stock not yet used or discarded (expired included), oldest first.
pub fn open_stock(connection: &Connection) -> Result<Vec<Lot>, StoreError> {
    let lots = connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock WHERE closed_at IS NULL
             ORDER BY use_by IS NULL, use_by, added_at, stock_id"
        ))?
        .query_map([], lot_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(lots)
}

/// Closes open stock as `used` or `discarded`; false when it was not open.
pub fn close_stock(
    tx: &Transaction<'_>,
    stock_id: &str,
    closed_as: &str,
    device: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE stock SET closed_at = ?2, closed_as = ?3, closed_by = ?4
             WHERE stock_id = ?1 AND closed_at IS NULL",
        )?
        .execute(params![stock_id, now_ms, closed_as, device])?;
    Ok(changed > 0)
}

pub fn insert_transfer(tx: &Transaction<'_>, transfer: &Transfer) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO transfers (sscc, scan_id, device, received_at, gtin, item_id, count, lot,
                                use_by, stock_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        transfer.sscc,
        transfer.scan_id,
        transfer.device,
        transfer.received_at_ms,
        transfer.gtin,
        transfer.item_id,
        transfer.count,
        transfer.lot,
        day_text(transfer.use_by),
        transfer.stock_id
    ])?;
    Ok(())
}

/// When a transfer unit was received, if it was.
pub fn transfer_received_at(
    connection: &Connection,
    sscc: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT received_at FROM transfers WHERE sscc = ?1")?
        .query_row([sscc], |row| row.get(0))
        .optional()?)
}

impl Store {
    /// Stock not yet used or discarded.
    pub fn open_stock(&self) -> Result<Vec<Lot>, StoreError> {
        open_stock(&self.connection)
    }

    pub fn stock(&self, stock_id: &str) -> Result<Option<Lot>, StoreError> {
        stock(&self.connection, stock_id)
    }
}
