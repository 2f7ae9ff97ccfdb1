//! Prep inventory rules, pure: the prep list (PAR for the day part − what is on hand and not
//! expired), the kitchen's local day, and batch ids for prep labels. What scans do to stock
//! runs in the kitchen (`kitchen::stock`), inside the scan's transaction.

use chrono::{Datelike, NaiveDate, Timelike};
use serde::Serialize;

use crate::record::Lot;
use kitchen_proto::reference::Reference;

/// The day `use_by` passed, if it has by `today` (a lot may be used on its use-by day).
pub fn expired(use_by: Option<NaiveDate>, today: NaiveDate) -> Option<NaiveDate> {
    use_by.filter(|day| *day < today)
}

/// The box's local date and minute of the day at `now_ms`: use-by dates and day parts are the
/// kitchen's local time.
pub fn local_day(now_ms: i64) -> (NaiveDate, u32) {
    let now = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&chrono::Local);
    (now.date_naive(), now.hour() * 60 + now.minute())
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

/// When `day` starts in `zone`, in Unix ms: its first valid local time (midnight, or the end
/// of a DST gap that swallowed it).
pub fn day_start_ms<Z: chrono::TimeZone>(day: NaiveDate, zone: &Z) -> i64 {
    (0..=2)
        .filter_map(|hour| day.and_hms_opt(hour, 0, 0))
        .find_map(|start| zone.from_local_datetime(&start).earliest())
        .map_or_else(
            || {
                day.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis()
            },
            |start| start.timestamp_millis(),
        )
}

/// The local day `day` as Unix ms, `[start, end)` (23, 24 or 25 hours).
pub fn day_span_ms(day: NaiveDate) -> (i64, i64) {
    let next = day.succ_opt().unwrap_or(day);
    (
        day_start_ms(day, &chrono::Local),
        day_start_ms(next, &chrono::Local),
    )
}

/// `at_ms` as the box's local time of day, `HH:MM`.
pub fn local_time(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
        .format("%H:%M")
        .to_string()
}

/// What moved in an item's stock over a span of time (a day, for the prep report), in units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayMoves {
    pub item_id: String,
    /// Added by prep labels.
    pub prepped: u32,
    /// Added by product codes and transfer units.
    pub received: u32,
    pub used: u32,
    pub discarded: u32,
}

/// Where a received transfer unit's stock is: still `open`, `used`, `discarded`, or
/// `unlinked` when it made no stock (its contents are no item's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferState {
    Open,
    Used,
    Discarded,
    Unlinked,
}

impl TransferState {
    /// From its stock's `closed_as` (`None` inside: open), or no stock at all.
    pub fn of(stock: Option<Option<&str>>) -> Self {
        match stock {
            None => TransferState::Unlinked,
            Some(None) => TransferState::Open,
            Some(Some("used")) => TransferState::Used,
            Some(Some(_)) => TransferState::Discarded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Open => "open",
            TransferState::Used => "used",
            TransferState::Discarded => "discarded",
            TransferState::Unlinked => "unlinked",
        }
    }
}

/// A transfer unit received, with where its stock is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferUnit {
    #[serde(flatten)]
    pub transfer: crate::record::Transfer,
    pub state: TransferState,
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

    #[test]
    fn a_day_starts_at_its_local_midnight() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).expect("date");
        let utc = chrono::Utc;
        assert_eq!(day_start_ms(day, &utc), 1_774_742_400_000);
        // Two hours east of UTC, the day starts two hours earlier.
        let east = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
        assert_eq!(day_start_ms(day, &east), 1_774_742_400_000 - 2 * 3_600_000);
    }
}
