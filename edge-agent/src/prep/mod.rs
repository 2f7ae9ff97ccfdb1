//! Prep inventory: what the prep, receiving and station scanners do to stock, and the prep list
//! (PAR − on hand). The scan effects run inside the kitchen's transaction for the scan, so a
//! scan and the stock it moved commit together; the prep view is a pure function of the
//! reference data, the open stock and the local time.

use chrono::{Datelike, NaiveDate, Timelike};
use rusqlite::Transaction;
use serde::Serialize;

use crate::{
    reference::Reference,
    scan::{Gs1, Scan, ScanRole},
    store::{self, Lot, StoreError, Transfer},
};

/// The box's local date and minute of the day at `now_ms`: use-by dates and day parts are the
/// kitchen's local time.
pub fn local_day(now_ms: i64) -> (NaiveDate, u32) {
    let now = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&chrono::Local);
    (now.date_naive(), now.hour() * 60 + now.minute())
}

/// What an accepted stock scan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMove {
    /// `stock` (added), `use` or `receive`.
    pub action: &'static str,
    /// The stock added or used (none for a transfer whose contents are not in the reference).
    pub lot: Option<Lot>,
    pub transfer: Option<Transfer>,
    /// Said with an accepted scan that did less than it might have.
    pub note: String,
}

/// Acts on a scan that is not a station ticket: a prep label or product code at the prep
/// scanner adds stock, a prep label at a station scanner uses it, a transfer unit at the
/// receiving scanner is received. `Ok(Err(reason))`: rejected, nothing changed.
#[allow(clippy::too_many_arguments)]
pub fn stock_scan(
    tx: &Transaction<'_>,
    reference: &Reference,
    role: &ScanRole,
    scan: &Scan,
    device: &str,
    scan_id: &str,
    today: NaiveDate,
    now_ms: i64,
) -> Result<Result<StockMove, String>, StoreError> {
    let new_lot = |item_id: &str, source: &str| Lot {
        stock_id: uuid::Uuid::now_v7().to_string(),
        item_id: item_id.to_owned(),
        source: source.to_owned(),
        label: None,
        quantity: 1,
        lot: None,
        prepared_on: None,
        use_by: None,
        added_at_ms: now_ms,
        added_by: device.to_owned(),
        closed_at_ms: None,
        closed_as: None,
        closed_by: None,
    };
    match (role, scan) {
        (
            ScanRole::Prep,
            Scan::PrepLabel {
                item_id,
                batch_id,
                prepared,
                use_by,
                quantity,
            },
        ) => {
            let lot = Lot {
                label: Some(prep_label_key(item_id, batch_id)),
                quantity: *quantity,
                lot: Some(batch_id.clone()),
                prepared_on: Some(*prepared),
                use_by: Some(*use_by),
                ..new_lot(item_id, "prep")
            };
            add_stock(tx, reference, lot, scan_id, today)
        }
        (ScanRole::Prep, Scan::Product { gtin14 }) => match reference.item_for_gtin(gtin14) {
            Some(item) => add_stock(tx, reference, new_lot(&item.id, "product"), scan_id, today),
            None => Ok(Err(format!("no item has GTIN {gtin14} in its match list"))),
        },
        (ScanRole::Prep, Scan::Gs1(gs1)) => {
            let Some(gtin) = &gs1.gtin else {
                return Ok(Err("this GS1 label has no GTIN (01)".into()));
            };
            let Some(item) = reference.item_for_gtin(gtin) else {
                return Ok(Err(format!("no item has GTIN {gtin} in its match list")));
            };
            let lot = Lot {
                label: gs1
                    .serial
                    .as_ref()
                    .map(|serial| format!("gtin:{gtin}/{serial}")),
                quantity: gs1.count.unwrap_or(1),
                lot: gs1.lot.clone(),
                prepared_on: gs1.production.or(gs1.packaging),
                use_by: use_by(gs1),
                ..new_lot(&item.id, "product")
            };
            add_stock(tx, reference, lot, scan_id, today)
        }
        (ScanRole::Prep, _) => Ok(Err(
            "a prep scanner takes prep labels and product codes; this is not one".into(),
        )),
        (
            ScanRole::Station(_),
            Scan::PrepLabel {
                item_id, batch_id, ..
            },
        ) => use_stock(
            tx,
            &prep_label_key(item_id, batch_id),
            device,
            today,
            now_ms,
        ),
        (ScanRole::Station(_), _) => Ok(Err(
            "a station scanner takes tickets and prep labels; this is not one".into(),
        )),
        (ScanRole::Receiving, Scan::TransferUnit { sscc, gs1 }) => receive(
            tx, reference, sscc, gs1, device, scan_id, today, now_ms, new_lot,
        ),
        (ScanRole::Receiving, _) => Ok(Err(
            "a receiving scanner takes transfer-unit (SSCC) labels; this is not one".into(),
        )),
    }
}

/// The label key of a prep label: its item and batch.
fn prep_label_key(item_id: &str, batch_id: &str) -> String {
    format!("prep:{item_id}/{batch_id}")
}

/// The date after which a GS1-labelled product may not be used: its use-by (17), else its
/// best-before (15).
fn use_by(gs1: &Gs1) -> Option<NaiveDate> {
    gs1.use_by.or(gs1.best_before)
}

fn expired(use_by: Option<NaiveDate>, today: NaiveDate) -> Option<NaiveDate> {
    use_by.filter(|day| *day < today)
}

fn add_stock(
    tx: &Transaction<'_>,
    reference: &Reference,
    lot: Lot,
    scan_id: &str,
    today: NaiveDate,
) -> Result<Result<StockMove, String>, StoreError> {
    if reference.item(&lot.item_id).is_none() {
        return Ok(Err(format!("unknown item {:?}", lot.item_id)));
    }
    if let Some(day) = expired(lot.use_by, today) {
        return Ok(Err(format!("expired: use by {day}; discard it")));
    }
    if let Some(label) = &lot.label
        && let Some(seen) = store::stock_by_label(tx, label)?
    {
        return Ok(Err(match seen.closed_as {
            Some(closed) => format!("this label was already scanned in and {closed}"),
            None => "this label is already on hand".to_owned(),
        }));
    }
    store::insert_stock(tx, &lot, Some(scan_id))?;
    Ok(Ok(StockMove {
        action: "stock",
        lot: Some(lot),
        transfer: None,
        note: String::new(),
    }))
}

fn use_stock(
    tx: &Transaction<'_>,
    label: &str,
    device: &str,
    today: NaiveDate,
    now_ms: i64,
) -> Result<Result<StockMove, String>, StoreError> {
    let Some(mut lot) = store::stock_by_label(tx, label)? else {
        return Ok(Err("this label was never scanned in at prep".into()));
    };
    if let Some(closed) = &lot.closed_as {
        return Ok(Err(format!("this label was already {closed}")));
    }
    if let Some(day) = expired(lot.use_by, today) {
        return Ok(Err(format!("expired: use by {day}; discard it")));
    }
    store::close_stock(tx, &lot.stock_id, "used", device, now_ms)?;
    lot.closed_at_ms = Some(now_ms);
    lot.closed_as = Some("used".into());
    lot.closed_by = Some(device.to_owned());
    Ok(Ok(StockMove {
        action: "use",
        lot: Some(lot),
        transfer: None,
        note: String::new(),
    }))
}

#[allow(clippy::too_many_arguments)]
fn receive(
    tx: &Transaction<'_>,
    reference: &Reference,
    sscc: &str,
    gs1: &Gs1,
    device: &str,
    scan_id: &str,
    today: NaiveDate,
    now_ms: i64,
    new_lot: impl Fn(&str, &str) -> Lot,
) -> Result<Result<StockMove, String>, StoreError> {
    if store::transfer_received_at(tx, sscc)?.is_some() {
        return Ok(Err(format!("transfer unit {sscc} was already received")));
    }
    if let Some(day) = expired(use_by(gs1), today) {
        return Ok(Err(format!("expired: use by {day}; refuse it")));
    }
    let gtin = gs1.content.clone().or_else(|| gs1.gtin.clone());
    let item = gtin.as_deref().and_then(|g| reference.item_for_gtin(g));
    let lot = item.map(|item| Lot {
        label: Some(format!("sscc:{sscc}")),
        quantity: gs1.count.unwrap_or(1),
        lot: gs1.lot.clone(),
        prepared_on: gs1.production.or(gs1.packaging),
        use_by: use_by(gs1),
        ..new_lot(&item.id, "transfer")
    });
    if let Some(lot) = &lot {
        store::insert_stock(tx, lot, Some(scan_id))?;
    }
    let transfer = Transfer {
        sscc: sscc.to_owned(),
        scan_id: scan_id.to_owned(),
        device: device.to_owned(),
        received_at_ms: now_ms,
        gtin: gtin.clone(),
        item_id: item.map(|i| i.id.clone()),
        count: gs1.count,
        lot: gs1.lot.clone(),
        use_by: use_by(gs1),
        stock_id: lot.as_ref().map(|l| l.stock_id.clone()),
    };
    store::insert_transfer(tx, &transfer)?;
    let note = match (&gtin, item) {
        (_, Some(_)) => String::new(),
        (Some(gtin), None) => format!("received; GTIN {gtin} is no item's, so no stock added"),
        (None, None) => "received; the label names no contents, so no stock added".into(),
    };
    Ok(Ok(StockMove {
        action: "receive",
        lot,
        transfer: Some(transfer),
        note,
    }))
}

/// Closes open stock as discarded. `Ok(Err)`: no such stock, or not open.
pub fn discard(
    tx: &Transaction<'_>,
    stock_id: &str,
    device: &str,
    now_ms: i64,
) -> Result<Result<Lot, String>, StoreError> {
    let Some(mut lot) = store::stock(tx, stock_id)? else {
        return Ok(Err(format!("no stock {stock_id:?}")));
    };
    if let Some(closed) = &lot.closed_as {
        return Ok(Err(format!("stock {stock_id:?} was already {closed}")));
    }
    store::close_stock(tx, stock_id, "discarded", device, now_ms)?;
    lot.closed_at_ms = Some(now_ms);
    lot.closed_as = Some("discarded".into());
    lot.closed_by = Some(device.to_owned());
    Ok(Ok(lot))
}

/// One item of the prep view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrepItem {
    pub item_id: String,
    pub name: String,
    pub station_id: String,
    pub unit: Option<String>,
    /// The PAR level now (none: the item keeps no stock, but some is open).
    pub par: Option<u32>,
    /// Units usable today: open, not expired.
    pub on_hand: u32,
    /// PAR − on hand, at least 0.
    pub to_make: u32,
    /// Units past their use-by, still open: to discard.
    pub expired: u32,
    /// The open stock, soonest use-by first.
    pub lots: Vec<PrepLot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrepLot {
    #[serde(flatten)]
    pub lot: Lot,
    pub expired: bool,
}

/// `GET /api/prep`: on hand against PAR for every stocked item (and any item with open stock),
/// and the prep list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrepView {
    pub today: NaiveDate,
    /// The day part running now, if any.
    pub day_part: Option<String>,
    pub items: Vec<PrepItem>,
    /// What to make now and how much: the items with `to_make` > 0.
    pub prep_list: Vec<PrepListEntry>,
    /// Open stock past its use-by.
    pub expired: Vec<Lot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrepListEntry {
    pub item_id: String,
    pub name: String,
    pub unit: Option<String>,
    pub to_make: u32,
}

/// The prep view at `today`, `minute` of the day, from the open stock.
pub fn view(reference: &Reference, open: Vec<Lot>, today: NaiveDate, minute: u32) -> PrepView {
    let day_part = reference.day_part_at(minute).map(|p| p.id.clone());
    let mut items: Vec<PrepItem> = reference
        .items
        .iter()
        .map(|item| PrepItem {
            item_id: item.id.clone(),
            name: item.name.clone(),
            station_id: item.station.clone(),
            unit: item.unit.clone(),
            par: item.par_for(day_part.as_deref()),
            on_hand: 0,
            to_make: 0,
            expired: 0,
            lots: Vec::new(),
        })
        .collect();
    let mut expired_lots = Vec::new();
    for lot in open {
        let index = match items.iter().position(|i| i.item_id == lot.item_id) {
            Some(index) => index,
            // Stock of an item the reference no longer lists still shows, by its id.
            None => {
                items.push(PrepItem {
                    item_id: lot.item_id.clone(),
                    name: lot.item_id.clone(),
                    station_id: String::new(),
                    unit: None,
                    par: None,
                    on_hand: 0,
                    to_make: 0,
                    expired: 0,
                    lots: Vec::new(),
                });
                items.len() - 1
            }
        };
        let item = &mut items[index];
        let is_expired = expired(lot.use_by, today).is_some();
        if is_expired {
            item.expired += lot.quantity;
            expired_lots.push(lot.clone());
        } else {
            item.on_hand += lot.quantity;
        }
        item.lots.push(PrepLot {
            lot,
            expired: is_expired,
        });
    }
    items.retain(|item| item.par.is_some() || !item.lots.is_empty());
    for item in &mut items {
        item.to_make = item.par.unwrap_or(0).saturating_sub(item.on_hand);
    }
    let prep_list = items
        .iter()
        .filter(|item| item.to_make > 0)
        .map(|item| PrepListEntry {
            item_id: item.item_id.clone(),
            name: item.name.clone(),
            unit: item.unit.clone(),
            to_make: item.to_make,
        })
        .collect();
    PrepView {
        today,
        day_part,
        items,
        prep_list,
        expired: expired_lots,
    }
}

/// A new prep batch id: the day and a base-36 count of milliseconds into it, 10 characters or
/// fewer (fits AI (10)), time-ordered within the day.
pub fn new_batch_id(now_ms: i64) -> String {
    let (today, _) = local_day(now_ms);
    let mut rest = now_ms.rem_euclid(86_400_000);
    let mut digits = Vec::new();
    loop {
        let digit = (rest % 36) as u32;
        digits.push(
            std::char::from_digit(digit, 36)
                .unwrap_or('0')
                .to_ascii_uppercase(),
        );
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    let tail: String = digits.into_iter().rev().collect();
    format!("{:02}{:02}{tail}", today.month(), today.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(item: &str, quantity: u32, use_by: Option<NaiveDate>, at: i64) -> Lot {
        Lot {
            stock_id: format!("{item}-{at}"),
            item_id: item.into(),
            source: "prep".into(),
            label: None,
            quantity,
            lot: None,
            prepared_on: None,
            use_by,
            added_at_ms: at,
            added_by: "prep-scanner".into(),
            closed_at_ms: None,
            closed_as: None,
            closed_by: None,
        }
    }

    #[test]
    fn prep_list_is_par_for_the_day_part_minus_what_has_not_expired() {
        let reference = Reference::parse(
            r#"
[[day_parts]]
id = "dinner"
start = "16:00"
end = "22:00"
[[stations]]
id = "prep"
name = "Prep"
[[items]]
id = "slaw"
name = "Slaw"
station = "prep"
prep_seconds = 0
par = 4
par_by_day_part = { dinner = 10 }
[[items]]
id = "buns"
name = "Buns"
station = "prep"
prep_seconds = 0
[[items]]
id = "onions"
name = "Onions"
station = "prep"
prep_seconds = 0
par = 2
"#,
        )
        .expect("valid");
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
        let today = day(22);
        let open = vec![
            lot("slaw", 3, Some(day(21)), 1),
            lot("slaw", 2, Some(today), 2),
            lot("slaw", 1, None, 3),
            lot("buns", 5, Some(day(23)), 4),
            lot("gone", 1, Some(day(23)), 5),
            lot("onions", 3, Some(day(24)), 6),
        ];
        let at = |minute| view(&reference, open.clone(), today, minute);
        let summary = |v: &PrepView| {
            v.items
                .iter()
                .map(|i| (i.item_id.clone(), i.par, i.on_hand, i.to_make, i.expired))
                .collect::<Vec<_>>()
        };
        let lunch = at(12 * 60);
        assert_eq!(lunch.day_part, None);
        assert_eq!(
            summary(&lunch),
            [
                ("slaw".to_owned(), Some(4), 3, 1, 3),
                ("buns".to_owned(), None, 5, 0, 0),
                ("onions".to_owned(), Some(2), 3, 0, 0),
                ("gone".to_owned(), None, 1, 0, 0),
            ]
        );
        assert_eq!(
            lunch.prep_list,
            [PrepListEntry {
                item_id: "slaw".into(),
                name: "Slaw".into(),
                unit: None,
                to_make: 1
            }]
        );
        assert_eq!(lunch.expired, [lot("slaw", 3, Some(day(21)), 1)]);
        assert!(lunch.items[0].lots[0].expired && !lunch.items[0].lots[1].expired);
        let dinner = at(18 * 60);
        assert_eq!(dinner.day_part.as_deref(), Some("dinner"));
        assert_eq!(summary(&dinner)[0], ("slaw".to_owned(), Some(10), 3, 7, 3));
    }

    #[test]
    fn batch_ids_fit_the_lot_field_and_follow_the_clock() {
        let a = new_batch_id(1_795_000_000_000);
        let b = new_batch_id(1_795_000_000_001);
        assert!(a.len() <= 10 && b.len() <= 10, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
    }
}
