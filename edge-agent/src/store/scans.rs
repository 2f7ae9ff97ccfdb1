//! Scans as recorded: every frame a scanner sent, accepted or rejected with the reason.

use rusqlite::{Transaction, params};

use super::StoreError;
use crate::record::ScanRecord;

/// Records a scan (in the transaction of its effect).
pub fn insert_scan(tx: &Transaction<'_>, scan: &ScanRecord, raw: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO scans (scan_id, device, raw, parsed, action, result, reason, order_id,
                            station_id, scanned_at, role, stock_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            scan.scan_id,
            scan.device,
            raw,
            scan.parsed.as_ref().map(|p| p.to_string()),
            scan.action,
            if scan.accepted {
                "accepted"
            } else {
                "rejected"
            },
            scan.reason,
            scan.order_id,
            scan.station_id,
            scan.scanned_at_ms,
            scan.role,
            scan.stock_id
        ],
    )?;
    Ok(())
}
