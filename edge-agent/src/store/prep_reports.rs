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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{close_stock, insert_stock, insert_transfer};

    const START: i64 = 1_764_720_000_000;
    const END: i64 = START + 86_400_000;

    fn lot(id: &str, item: &str, source: &str, quantity: u32, added: i64) -> Lot {
        Lot {
            stock_id: id.into(),
            item_id: item.into(),
            source: source.into(),
            label: None,
            quantity,
            lot: Some(id.to_uppercase()),
            prepared_on: None,
            use_by: None,
            added_at_ms: added,
            added_by: "prep".into(),
            closed_at_ms: None,
            closed_as: None,
            closed_by: None,
        }
    }

    fn transfer(sscc: &str, received: i64, stock_id: Option<&str>) -> Transfer {
        Transfer {
            sscc: sscc.into(),
            scan_id: format!("scan-{sscc}"),
            device: "door".into(),
            received_at_ms: received,
            gtin: Some("00012345678905".into()),
            item_id: stock_id.map(|_| "pickles".into()),
            count: Some(4),
            lot: None,
            use_by: None,
            stock_id: stock_id.map(str::to_owned),
        }
    }

    /// A day's edges: stock added or closed at its first millisecond counts, at the next day's
    /// first does not; what was added before and closed during it counts as closed only.
    #[test]
    fn a_day_counts_what_moved_within_its_edges() {
        let mut store = Store::open_in_memory().expect("opens");
        let tx = store.transaction().expect("tx");
        for (lot, closed) in [
            // Prepped yesterday, used today.
            (
                lot("a", "slaw", "prep", 2, START - 1),
                Some((START + 10, "used")),
            ),
            (lot("b", "slaw", "prep", 3, START), None),
            (lot("c", "buns", "product", 12, END - 1), None),
            // Tomorrow's.
            (lot("d", "slaw", "prep", 5, END), None),
            (
                lot("e", "slaw", "prep", 1, START + 5),
                Some((END - 1, "discarded")),
            ),
            // Closed at the next day's first millisecond: still open today.
            (
                lot("f", "pickles", "transfer", 4, START + 7),
                Some((END, "used")),
            ),
            (
                lot("g", "pickles", "transfer", 6, START + 8),
                Some((START + 30, "discarded")),
            ),
        ] {
            insert_stock(&tx, &lot, None).expect("stock");
            if let Some((at, closed_as)) = closed {
                assert!(close_stock(&tx, &lot.stock_id, closed_as, "cook", at).expect("closed"));
            }
        }
        insert_transfer(&tx, &transfer("s1", START + 7, Some("f"))).expect("transfer");
        insert_transfer(&tx, &transfer("s2", START + 8, Some("g"))).expect("transfer");
        insert_transfer(&tx, &transfer("s3", START + 9, None)).expect("transfer");
        insert_transfer(&tx, &transfer("s0", START - 1, None)).expect("transfer");
        insert_transfer(&tx, &transfer("s4", END, None)).expect("transfer");
        tx.commit().expect("commit");

        let moves = |item: &str, prepped, received, used, discarded| DayMoves {
            item_id: item.into(),
            prepped,
            received,
            used,
            discarded,
        };
        assert_eq!(
            store.day_moves(START, END).expect("moves"),
            [
                moves("buns", 0, 12, 0, 0),
                moves("pickles", 0, 10, 0, 6),
                moves("slaw", 4, 0, 2, 1),
            ]
        );
        let open = |at| -> Vec<String> {
            store
                .stock_open_at(at)
                .expect("open")
                .into_iter()
                .map(|l| l.stock_id)
                .collect()
        };
        assert_eq!(open(START + 9), ["a", "b", "e", "f", "g"]);
        // Oldest first (none has a use-by).
        assert_eq!(open(END - 1), ["b", "f", "c"]);
        let discarded: Vec<String> = store
            .discarded_between(START, END)
            .expect("discarded")
            .into_iter()
            .map(|l| l.stock_id)
            .collect();
        assert_eq!(discarded, ["g", "e"]);
        let units: Vec<(String, TransferState)> = store
            .transfers_between(START, END)
            .expect("transfers")
            .into_iter()
            .map(|u| (u.transfer.sscc, u.state))
            .collect();
        assert_eq!(
            units,
            [
                ("s1".into(), TransferState::Used),
                ("s2".into(), TransferState::Discarded),
                ("s3".into(), TransferState::Unlinked),
            ]
        );
    }
}
