//! The daily transfer-unit report: every transfer unit (SSCC) received on a day, what it held,
//! and where its stock is now — built from the store's rows (pure) and laid out as a
//! `Document`.

use chrono::NaiveDate;
use kitchen_proto::reference::Reference;

use super::{Block, Column, Document, Row, Table};
use crate::prep::{TransferState, TransferUnit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransfersReport {
    pub kitchen: String,
    pub day: NaiveDate,
    pub lines: Vec<TransferLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferLine {
    /// Local `HH:MM`.
    pub time: String,
    pub sscc: String,
    /// The item's name; else its GTIN; else `-`.
    pub item: String,
    pub count: Option<u32>,
    pub lot: Option<String>,
    pub use_by: Option<NaiveDate>,
    pub device: String,
    pub state: TransferState,
}

/// A state as the report and the display say it.
pub fn state_text(state: TransferState) -> &'static str {
    match state {
        TransferState::Open => "open",
        TransferState::Used => "used up",
        TransferState::Discarded => "discarded",
        TransferState::Unlinked => "no stock",
    }
}

impl TransfersReport {
    pub fn build(
        reference: &Reference,
        kitchen: &str,
        day: NaiveDate,
        units: &[TransferUnit],
        time_of: impl Fn(i64) -> String,
    ) -> Self {
        let lines = units
            .iter()
            .map(|unit| {
                let transfer = &unit.transfer;
                let item = match (&transfer.item_id, &transfer.gtin) {
                    (Some(id), _) => reference
                        .item(id)
                        .map_or_else(|| id.clone(), |i| i.name.clone()),
                    (None, Some(gtin)) => format!("GTIN {gtin}"),
                    (None, None) => "-".to_owned(),
                };
                TransferLine {
                    time: time_of(transfer.received_at_ms),
                    sscc: transfer.sscc.clone(),
                    item,
                    count: transfer.count,
                    lot: transfer.lot.clone(),
                    use_by: transfer.use_by,
                    device: transfer.device.clone(),
                    state: unit.state,
                }
            })
            .collect();
        TransfersReport {
            kitchen: kitchen.to_owned(),
            day,
            lines,
        }
    }

    pub fn document(&self) -> Document {
        let counted = |state: TransferState| self.lines.iter().filter(|l| l.state == state).count();
        let table = Table {
            columns: vec![
                Column::left("Received", 48.0),
                Column::left("SSCC", 100.0),
                Column::left("Item", 102.0),
                Column::right("Count", 32.0),
                Column::left("Lot", 36.0),
                Column::left("Use by", 56.0),
                Column::left("Device", 90.0),
                Column::left("State", 51.0),
            ],
            rows: self
                .lines
                .iter()
                .map(|line| Row {
                    cells: vec![
                        line.time.clone(),
                        line.sscc.clone(),
                        line.item.clone(),
                        line.count.map(|c| c.to_string()).unwrap_or_default(),
                        line.lot.clone().unwrap_or_default(),
                        line.use_by.map(|d| d.to_string()).unwrap_or_default(),
                        line.device.clone(),
                        state_text(line.state).to_owned(),
                    ],
                    strong: false,
                })
                .collect(),
            empty: "No transfer units were received.".to_owned(),
        };
        Document {
            title: format!("Transfer units received {}", self.day),
            subtitle: format!(
                "Kitchen {} - {} received: {} open, {} used up, {} discarded, {} without stock",
                self.kitchen,
                self.lines.len(),
                counted(TransferState::Open),
                counted(TransferState::Used),
                counted(TransferState::Discarded),
                counted(TransferState::Unlinked),
            ),
            footer: format!("Kitchen {} - transfer units {}", self.kitchen, self.day),
            blocks: vec![
                Block::Heading("Transfer units".to_owned()),
                Block::Table(table),
            ],
        }
    }
}
