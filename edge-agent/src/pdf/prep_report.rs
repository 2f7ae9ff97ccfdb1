//! The daily prep report: per item what was prepped, received, used and discarded on a day,
//! what is on hand against PAR, what is below PAR, and the stock thrown away — built from the
//! store's facts (pure) and laid out as a `Document`.

use chrono::NaiveDate;
use kitchen_proto::reference::Reference;

use super::{Block, Column, Document, Row, Table};
use crate::{
    prep::{DayMoves, expired},
    record::Lot,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepReport {
    pub kitchen: String,
    pub day: NaiveDate,
    /// When on hand and PAR are taken: local `HH:MM` (today: now); `None`: the end of a past day.
    pub as_of: Option<String>,
    /// The day part whose PAR applies then.
    pub day_part: Option<String>,
    pub items: Vec<PrepReportItem>,
    pub discarded: Vec<DiscardedLine>,
    /// Transfer units received that day (listed in the transfer-unit report).
    pub transfers_received: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepReportItem {
    pub name: String,
    pub unit: Option<String>,
    pub prepped: u32,
    pub received: u32,
    pub used: u32,
    pub discarded: u32,
    /// Open and within its use-by then.
    pub on_hand: u32,
    /// Open but past its use-by then.
    pub expired: u32,
    pub par: Option<u32>,
}

impl PrepReportItem {
    /// How many units it is short of PAR, if it is.
    pub fn below_par(&self) -> Option<u32> {
        self.par
            .filter(|par| self.on_hand < *par)
            .map(|par| par - self.on_hand)
    }
}

/// Stock thrown away that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscardedLine {
    /// Local `HH:MM`.
    pub time: String,
    pub name: String,
    pub quantity: u32,
    pub lot: Option<String>,
    pub use_by: Option<NaiveDate>,
    pub by: String,
}

/// What the report is built from: the store's facts for the day.
#[derive(Debug, Clone, Default)]
pub struct DayFacts {
    pub moves: Vec<DayMoves>,
    /// Stock open at the moment on hand is taken.
    pub open: Vec<Lot>,
    pub discarded: Vec<Lot>,
    pub transfers_received: usize,
}

impl PrepReport {
    /// The report for `day`, on hand and PAR taken at `minute` of the day (`as_of` says when, in
    /// words); `time_of` gives a moment's local `HH:MM`. Items: every stocked item and any that
    /// moved or has stock open, in reference order, then unknown items by id.
    pub fn build(
        reference: &Reference,
        kitchen: &str,
        day: NaiveDate,
        as_of: Option<String>,
        minute: u32,
        facts: DayFacts,
        time_of: impl Fn(i64) -> String,
    ) -> Self {
        let day_part = reference.day_part_at(minute).map(|p| p.id.clone());
        let mut ids: Vec<String> = reference.items.iter().map(|i| i.id.clone()).collect();
        for id in facts
            .moves
            .iter()
            .map(|m| &m.item_id)
            .chain(facts.open.iter().map(|l| &l.item_id))
        {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let items = ids
            .iter()
            .filter_map(|id| {
                let item = reference.item(id);
                let moves = facts.moves.iter().find(|m| &m.item_id == id);
                let open: Vec<&Lot> = facts.open.iter().filter(|l| &l.item_id == id).collect();
                let stocked = item.is_some_and(|i| i.stocked());
                if !stocked && moves.is_none() && open.is_empty() {
                    return None;
                }
                let (gone, fresh): (Vec<&Lot>, Vec<&Lot>) = open
                    .iter()
                    .partition(|lot| expired(lot.use_by, day).is_some());
                let moves = moves.cloned().unwrap_or_default();
                Some(PrepReportItem {
                    name: item.map_or_else(|| id.clone(), |i| i.name.clone()),
                    unit: item.and_then(|i| i.unit.clone()),
                    prepped: moves.prepped,
                    received: moves.received,
                    used: moves.used,
                    discarded: moves.discarded,
                    on_hand: fresh.iter().map(|l| l.quantity).sum(),
                    expired: gone.iter().map(|l| l.quantity).sum(),
                    par: item.and_then(|i| i.par_for(day_part.as_deref())),
                })
            })
            .collect();
        let discarded = facts
            .discarded
            .iter()
            .map(|lot| DiscardedLine {
                time: lot.closed_at_ms.map(&time_of).unwrap_or_default(),
                name: reference
                    .item(&lot.item_id)
                    .map_or_else(|| lot.item_id.clone(), |i| i.name.clone()),
                quantity: lot.quantity,
                lot: lot.lot.clone(),
                use_by: lot.use_by,
                by: lot.closed_by.clone().unwrap_or_default(),
            })
            .collect();
        PrepReport {
            kitchen: kitchen.to_owned(),
            day,
            as_of,
            day_part,
            items,
            discarded,
            transfers_received: facts.transfers_received,
        }
    }

    pub fn document(&self) -> Document {
        let when = match &self.as_of {
            Some(time) => format!("at {time}"),
            None => "at the end of the day".to_owned(),
        };
        let part = match &self.day_part {
            Some(part) => format!(" ({part})"),
            None => String::new(),
        };
        let count = |n: u32| n.to_string();
        let stock = Table {
            columns: vec![
                Column::left("Item", 145.0),
                Column::right("Prepped", 46.0),
                Column::right("Received", 50.0),
                Column::right("Used", 36.0),
                Column::right("Discarded", 52.0),
                Column::right("On hand", 48.0),
                Column::right("Expired", 44.0),
                Column::right("PAR", 34.0),
                Column::right("Below PAR", 60.0),
            ],
            rows: self
                .items
                .iter()
                .map(|item| Row {
                    cells: vec![
                        match &item.unit {
                            Some(unit) => format!("{} ({unit})", item.name),
                            None => item.name.clone(),
                        },
                        count(item.prepped),
                        count(item.received),
                        count(item.used),
                        count(item.discarded),
                        item.on_hand.to_string(),
                        count(item.expired),
                        item.par
                            .map_or_else(|| "-".to_owned(), |par| par.to_string()),
                        item.below_par()
                            .map_or_else(String::new, |short| format!("make {short}")),
                    ],
                    strong: item.below_par().is_some(),
                })
                .collect(),
            empty: "No stocked items and no stock moved.".to_owned(),
        };
        let below = Table {
            columns: vec![
                Column::left("Item", 245.0),
                Column::right("PAR", 90.0),
                Column::right("On hand", 90.0),
                Column::right("To make", 90.0),
            ],
            rows: self
                .items
                .iter()
                .filter_map(|item| {
                    let short = item.below_par()?;
                    Some(Row {
                        cells: vec![
                            item.name.clone(),
                            item.par.unwrap_or_default().to_string(),
                            item.on_hand.to_string(),
                            short.to_string(),
                        ],
                        strong: false,
                    })
                })
                .collect(),
            empty: "Nothing is below PAR.".to_owned(),
        };
        let discarded = Table {
            columns: vec![
                Column::left("Time", 45.0),
                Column::left("Item", 150.0),
                Column::right("Qty", 40.0),
                Column::left("Lot", 90.0),
                Column::left("Use by", 70.0),
                Column::left("By", 120.0),
            ],
            rows: self
                .discarded
                .iter()
                .map(|line| Row {
                    cells: vec![
                        line.time.clone(),
                        line.name.clone(),
                        line.quantity.to_string(),
                        line.lot.clone().unwrap_or_default(),
                        line.use_by.map(|d| d.to_string()).unwrap_or_default(),
                        line.by.clone(),
                    ],
                    strong: false,
                })
                .collect(),
            empty: "Nothing was discarded.".to_owned(),
        };
        Document {
            title: format!("Prep report {}", self.day),
            subtitle: format!("Kitchen {} - on hand and PAR {when}{part}", self.kitchen),
            footer: format!("Kitchen {} - prep report {}", self.kitchen, self.day),
            blocks: vec![
                Block::Heading("Stock by item".to_owned()),
                Block::Table(stock),
                Block::Heading("Below PAR".to_owned()),
                Block::Table(below),
                Block::Heading("Discarded".to_owned()),
                Block::Table(discarded),
                Block::Text(format!(
                    "Transfer units received: {} (listed in the transfer-unit report).",
                    self.transfers_received
                )),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = r#"
[[day_parts]]
id = "lunch"
start = "11:00"
end = "15:00"
[[stations]]
id = "prep"
name = "Prep"
[[items]]
id = "slaw"
name = "Slaw"
station = "prep"
prep_seconds = 0
par = 2
par_by_day_part = { lunch = 6 }
unit = "1/6 pan"
[[items]]
id = "fries"
name = "Fries"
station = "prep"
prep_seconds = 0
[[items]]
id = "buns"
name = "Buns"
station = "prep"
prep_seconds = 0
par = 10
"#;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).expect("date")
    }

    fn lot(item: &str, quantity: u32, use_by: NaiveDate) -> Lot {
        Lot {
            stock_id: format!("{item}-{quantity}"),
            item_id: item.into(),
            source: "prep".into(),
            label: None,
            quantity,
            lot: Some("B1".into()),
            prepared_on: None,
            use_by: Some(use_by),
            added_at_ms: 0,
            added_by: "prep".into(),
            closed_at_ms: Some(45_000_000),
            closed_as: Some("discarded".into()),
            closed_by: Some("manager".into()),
        }
    }

    fn build(minute: u32) -> PrepReport {
        let reference = Reference::parse(REFERENCE).expect("reference");
        let yesterday = day().pred_opt().expect("date");
        PrepReport::build(
            &reference,
            "k1",
            day(),
            Some("12:30".into()),
            minute,
            DayFacts {
                moves: vec![
                    DayMoves {
                        item_id: "slaw".into(),
                        prepped: 5,
                        used: 1,
                        ..DayMoves::default()
                    },
                    DayMoves {
                        item_id: "gone".into(),
                        discarded: 2,
                        ..DayMoves::default()
                    },
                ],
                open: vec![lot("slaw", 3, day()), lot("slaw", 1, yesterday)],
                discarded: vec![lot("gone", 2, yesterday)],
                transfers_received: 1,
            },
            |ms| format!("t{ms}"),
        )
    }

    /// (name, prepped, used, discarded, on hand, expired, PAR, below PAR)
    type Figures = (String, u32, u32, u32, u32, u32, Option<u32>, Option<u32>);

    fn figures(report: &PrepReport) -> Vec<Figures> {
        report
            .items
            .iter()
            .map(|i| {
                (
                    i.name.clone(),
                    i.prepped,
                    i.used,
                    i.discarded,
                    i.on_hand,
                    i.expired,
                    i.par,
                    i.below_par(),
                )
            })
            .collect()
    }

    #[test]
    fn on_hand_leaves_out_what_expired_and_par_follows_the_day_part() {
        // 12:30, lunch: slaw's PAR is 6; its lot with yesterday's use-by is expired, not on hand.
        // Fries keep no stock and did not move: not listed. An item the reference no longer
        // has is listed by its id.
        let lunch = build(12 * 60 + 30);
        assert_eq!(lunch.day_part.as_deref(), Some("lunch"));
        assert_eq!(
            figures(&lunch),
            [
                ("Slaw".into(), 5, 1, 0, 3, 1, Some(6), Some(3)),
                ("Buns".into(), 0, 0, 0, 0, 0, Some(10), Some(10)),
                ("gone".into(), 0, 0, 2, 0, 0, None, None),
            ]
        );
        // 16:00, no day part: the item's plain PAR (2), which 3 on hand meets.
        let evening = build(16 * 60);
        assert_eq!(evening.day_part, None);
        assert_eq!(figures(&evening)[0].6, Some(2));
        assert_eq!(figures(&evening)[0].7, None);
    }

    #[test]
    fn the_document_marks_what_is_below_par_and_lists_the_discards() {
        let document = build(12 * 60 + 30).document();
        assert_eq!(document.title, "Prep report 2026-12-03");
        assert_eq!(
            document.subtitle,
            "Kitchen k1 - on hand and PAR at 12:30 (lunch)"
        );
        let Block::Table(stock) = &document.blocks[1] else {
            panic!("the stock table")
        };
        let rows: Vec<(Vec<&str>, bool)> = stock
            .rows
            .iter()
            .map(|r| (r.cells.iter().map(String::as_str).collect(), r.strong))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    vec![
                        "Slaw (1/6 pan)",
                        "5",
                        "0",
                        "1",
                        "0",
                        "3",
                        "1",
                        "6",
                        "make 3"
                    ],
                    true
                ),
                (
                    vec!["Buns", "0", "0", "0", "0", "0", "0", "10", "make 10"],
                    true
                ),
                (vec!["gone", "0", "0", "0", "2", "0", "0", "-", ""], false),
            ]
        );
        let Block::Table(discarded) = &document.blocks[5] else {
            panic!("the discard table")
        };
        assert_eq!(
            discarded.rows[0].cells,
            ["t45000000", "gone", "2", "B1", "2026-12-02", "manager"]
        );
        assert_eq!(
            document.blocks[6],
            Block::Text("Transfer units received: 1 (listed in the transfer-unit report).".into())
        );
    }
}
