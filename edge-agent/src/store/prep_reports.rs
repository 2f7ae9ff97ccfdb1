//! Reads for the prep and transfer-unit reports and the transfer-unit view: what moved in each
//! item's stock over a span of time, the stock open at a moment, what was discarded, and the
//! transfer units received with where their stock is now. Reads only.

use rusqlite::{Connection, params};

use super::{
    Store, StoreError,
    stock::{LOT_COLUMNS, day_from_text, lot_from_row},
};
use crate::{
    prep::{DayMoves, TransferState, TransferUnit},
    record::{Lot, Transfer},
};

/// Per item, what was prepped, received, used and discarded in `[from_ms, to_ms)`, by item id.
pub fn day_moves(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayMoves>, StoreError> {
    let moves = connection
        .prepare_cached(
            "SELECT item_id,
                    SUM(CASE WHEN source = 'prep' AND added_at >= ?1 AND added_at < ?2
                             THEN quantity ELSE 0 END),
                    SUM(CASE WHEN source <> 'prep' AND added_at >= ?1 AND added_at < ?2
                             THEN quantity ELSE 0 END),
                    SUM(CASE WHEN closed_as = 'used' AND closed_at >= ?1 AND closed_at < ?2
                             THEN quantity ELSE 0 END),
                    SUM(CASE WHEN closed_as = 'discarded' AND closed_at >= ?1 AND closed_at < ?2
                             THEN quantity ELSE 0 END)
             FROM stock
             WHERE (added_at >= ?1 AND added_at < ?2) OR (closed_at >= ?1 AND closed_at < ?2)
             GROUP BY item_id ORDER BY item_id",
        )?
        .query_map(params![from_ms, to_ms], |row| {
            Ok(DayMoves {
                item_id: row.get(0)?,
                prepped: row.get(1)?,
                received: row.get(2)?,
                used: row.get(3)?,
                discarded: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(moves)
}

/// The stock that was open at `at_ms` (added by then, not closed by then), soonest use-by
/// first, as `open_stock` orders it.
pub fn stock_open_at(connection: &Connection, at_ms: i64) -> Result<Vec<Lot>, StoreError> {
    let lots = connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock
             WHERE added_at <= ?1 AND (closed_at IS NULL OR closed_at > ?1)
             ORDER BY use_by IS NULL, use_by, added_at, stock_id"
        ))?
        .query_map([at_ms], lot_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(lots)
}

/// The stock discarded in `[from_ms, to_ms)`, in the order it was.
pub fn discarded_between(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Lot>, StoreError> {
    let lots = connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock
             WHERE closed_as = 'discarded' AND closed_at >= ?1 AND closed_at < ?2
             ORDER BY closed_at, stock_id"
        ))?
        .query_map(params![from_ms, to_ms], lot_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(lots)
}

/// The transfer units received in `[from_ms, to_ms)`, in the order they were, each with where
/// its stock is now.
pub fn transfers_between(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<TransferUnit>, StoreError> {
    let units = connection
        .prepare_cached(
            "SELECT t.sscc, t.scan_id, t.device, t.received_at, t.gtin, t.item_id, t.count,
                    t.lot, t.use_by, t.stock_id, s.stock_id IS NOT NULL, s.closed_as
             FROM transfers t LEFT JOIN stock s ON s.stock_id = t.stock_id
             WHERE t.received_at >= ?1 AND t.received_at < ?2
             ORDER BY t.received_at, t.sscc",
        )?
        .query_map(params![from_ms, to_ms], |row| {
            let stocked: bool = row.get(10)?;
            let closed_as: Option<String> = row.get(11)?;
            Ok(TransferUnit {
                transfer: Transfer {
                    sscc: row.get(0)?,
                    scan_id: row.get(1)?,
                    device: row.get(2)?,
                    received_at_ms: row.get(3)?,
                    gtin: row.get(4)?,
                    item_id: row.get(5)?,
                    count: row.get(6)?,
                    lot: row.get(7)?,
                    use_by: day_from_text(row.get(8)?),
                    stock_id: row.get(9)?,
                },
                state: TransferState::of(stocked.then_some(closed_as.as_deref())),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(units)
}

impl Store {
    pub fn day_moves(&self, from_ms: i64, to_ms: i64) -> Result<Vec<DayMoves>, StoreError> {
        day_moves(&self.connection, from_ms, to_ms)
    }

    pub fn stock_open_at(&self, at_ms: i64) -> Result<Vec<Lot>, StoreError> {
        stock_open_at(&self.connection, at_ms)
    }

    pub fn discarded_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Lot>, StoreError> {
        discarded_between(&self.connection, from_ms, to_ms)
    }

    pub fn transfers_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TransferUnit>, StoreError> {
        transfers_between(&self.connection, from_ms, to_ms)
    }
}
