//! Prep stock: what the prep, receiving and station scanners do to stock (inside the scan's
//! transaction, so a scan and the stock it moved commit together), and discards from the LAN.

use chrono::NaiveDate;
use rusqlite::Transaction;

use crate::{
    record::{Lot, Record, StockChange, StockChangeKind, Transfer},
    scan::Gs1,
    scan::{Scan, ScanRole},
    store::{self, StoreError},
};
use kitchen_proto::reference::Reference;

use super::{Kitchen, Touched};

/// Why a stock scan or a discard changed nothing; the text is the scan's recorded reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockRejection {
    #[error("no item has GTIN {0} in its match list")]
    UnknownGtin(String),
    #[error("this GS1 label has no GTIN (01)")]
    NoGtin,
    #[error("{0}")]
    WrongScanner(ScanRoleName),
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    #[error("expired: use by {use_by}; discard it")]
    Expired { use_by: NaiveDate },
    #[error("this label was already scanned in and {0}")]
    LabelClosed(String),
    #[error("this label is already on hand")]
    LabelOnHand,
    #[error("this label was never scanned in at prep")]
    LabelUnknown,
    #[error("this label was already {0}")]
    LabelAlready(String),
    #[error("transfer unit {0} was already received")]
    TransferReceived(String),
    #[error("expired: use by {use_by}; refuse it")]
    TransferExpired { use_by: NaiveDate },
    #[error("no stock {0:?}")]
    NoStock(String),
    #[error("stock {stock_id:?} was already {closed}")]
    StockClosed { stock_id: String, closed: String },
    #[error(
        "the kitchen box's clock is not synchronised, so use by {use_by} cannot be checked; \
         scan it again once the clock is set"
    )]
    ClockNotSynchronised { use_by: NaiveDate },
}

/// Recorded with a use of stock while the clock cannot be trusted.
const USE_BY_UNCHECKED: &str = "use-by not checked: the kitchen box's clock is not synchronised";

/// What the scan's day can be trusted for: `today` as the clock says, and whether the clock
/// is synchronised (a box without a battery-backed clock boots with the last time it saved).
#[derive(Debug, Clone, Copy)]
pub struct Today {
    pub date: NaiveDate,
    pub trusted: bool,
}

impl Today {
    /// Refuses to take stock with a use-by date as fresh while the clock is not trusted, and
    /// stock past it always.
    fn fresh(
        self,
        use_by: Option<NaiveDate>,
        expired: impl FnOnce(NaiveDate) -> StockRejection,
    ) -> Result<(), StockRejection> {
        match use_by {
            Some(day) if !self.trusted => Err(StockRejection::ClockNotSynchronised { use_by: day }),
            use_by => {
                crate::prep::expired(use_by, self.date).map_or(Ok(()), |day| Err(expired(day)))
            }
        }
    }
}

/// A scanner that was handed what it does not take, by what it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanRoleName {
    #[error("a prep scanner takes prep labels and product codes; this is not one")]
    Prep,
    #[error("a station scanner takes tickets and prep labels; this is not one")]
    Station,
    #[error("a receiving scanner takes transfer-unit (SSCC) labels; this is not one")]
    Receiving,
    #[error("an Expo scanner takes tickets; this is not one")]
    Expo,
}

impl Kitchen {
    /// Discards open stock (`POST /api/stock/{id}/discard`), logged as `stock.changed`.
    pub fn discard_stock(
        &mut self,
        stock_id: &str,
        device: &str,
        now_ms: i64,
    ) -> Result<Result<Lot, StockRejection>, StoreError> {
        self.write(now_ms, |_, tx, pending| {
            let result = discard(tx, stock_id, device, now_ms)?;
            if let Ok(lot) = &result {
                let change = StockChange {
                    change: StockChangeKind::Discarded,
                    item_id: lot.item_id.clone(),
                    lot: lot.clone(),
                    transfer: None,
                    scan_id: None,
                };
                pending.log.push(store::append_log(
                    tx,
                    &Record::StockChanged(change),
                    Some(&[]),
                    now_ms,
                )?);
            }
            Ok((result, Touched::default()))
        })
    }
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
/// receiving scanner is received. `Ok(Err(rejection))`: rejected, nothing changed.
#[allow(clippy::too_many_arguments)]
pub fn stock_scan(
    tx: &Transaction<'_>,
    reference: &Reference,
    role: &ScanRole,
    scan: &Scan,
    device: &str,
    scan_id: &str,
    today: Today,
    now_ms: i64,
) -> Result<Result<StockMove, StockRejection>, StoreError> {
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
            None => Ok(Err(StockRejection::UnknownGtin(gtin14.clone()))),
        },
        (ScanRole::Prep, Scan::Gs1(gs1)) => {
            let Some(gtin) = &gs1.gtin else {
                return Ok(Err(StockRejection::NoGtin));
            };
            let Some(item) = reference.item_for_gtin(gtin) else {
                return Ok(Err(StockRejection::UnknownGtin(gtin.clone())));
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
        (ScanRole::Prep, _) => Ok(Err(StockRejection::WrongScanner(ScanRoleName::Prep))),
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
        (ScanRole::Station(_), _) => Ok(Err(StockRejection::WrongScanner(ScanRoleName::Station))),
        (ScanRole::Receiving, Scan::TransferUnit { sscc, gs1 }) => receive(
            tx, reference, sscc, gs1, device, scan_id, today, now_ms, new_lot,
        ),
        (ScanRole::Receiving, _) => Ok(Err(StockRejection::WrongScanner(ScanRoleName::Receiving))),
        (ScanRole::Expo, _) => Ok(Err(StockRejection::WrongScanner(ScanRoleName::Expo))),
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

fn add_stock(
    tx: &Transaction<'_>,
    reference: &Reference,
    lot: Lot,
    scan_id: &str,
    today: Today,
) -> Result<Result<StockMove, StockRejection>, StoreError> {
    if reference.item(&lot.item_id).is_none() {
        return Ok(Err(StockRejection::UnknownItem(lot.item_id)));
    }
    if let Err(rejection) = today.fresh(lot.use_by, |use_by| StockRejection::Expired { use_by }) {
        return Ok(Err(rejection));
    }
    if let Some(label) = &lot.label
        && let Some(seen) = store::stock_by_label(tx, label)?
    {
        return Ok(Err(match seen.closed_as {
            Some(closed) => StockRejection::LabelClosed(closed),
            None => StockRejection::LabelOnHand,
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
    today: Today,
    now_ms: i64,
) -> Result<Result<StockMove, StockRejection>, StoreError> {
    let Some(mut lot) = store::stock_by_label(tx, label)? else {
        return Ok(Err(StockRejection::LabelUnknown));
    };
    if let Some(closed) = &lot.closed_as {
        return Ok(Err(StockRejection::LabelAlready(closed.clone())));
    }
    // The line is not stopped over the clock: the use is recorded, its use-by unchecked.
    let note = if today.trusted || lot.use_by.is_none() {
        String::new()
    } else {
        USE_BY_UNCHECKED.to_owned()
    };
    if today.trusted
        && let Some(day) = crate::prep::expired(lot.use_by, today.date)
    {
        return Ok(Err(StockRejection::Expired { use_by: day }));
    }
    store::close_stock(tx, &lot.stock_id, "used", device, now_ms)?;
    lot.closed_at_ms = Some(now_ms);
    lot.closed_as = Some("used".into());
    lot.closed_by = Some(device.to_owned());
    Ok(Ok(StockMove {
        action: "use",
        lot: Some(lot),
        transfer: None,
        note,
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
    today: Today,
    now_ms: i64,
    new_lot: impl Fn(&str, &str) -> Lot,
) -> Result<Result<StockMove, StockRejection>, StoreError> {
    if store::transfer_received_at(tx, sscc)?.is_some() {
        return Ok(Err(StockRejection::TransferReceived(sscc.to_owned())));
    }
    if let Err(rejection) = today.fresh(use_by(gs1), |use_by| StockRejection::TransferExpired {
        use_by,
    }) {
        return Ok(Err(rejection));
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
) -> Result<Result<Lot, StockRejection>, StoreError> {
    let Some(mut lot) = store::stock(tx, stock_id)? else {
        return Ok(Err(StockRejection::NoStock(stock_id.to_owned())));
    };
    if let Some(closed) = &lot.closed_as {
        return Ok(Err(StockRejection::StockClosed {
            stock_id: stock_id.to_owned(),
            closed: closed.clone(),
        }));
    }
    store::close_stock(tx, stock_id, "discarded", device, now_ms)?;
    lot.closed_at_ms = Some(now_ms);
    lot.closed_as = Some("discarded".into());
    lot.closed_by = Some(device.to_owned());
    Ok(Ok(lot))
}
