//! What the kitchen tells Otter, pure: the prep-time estimate an order is accepted with, the
//! actions Expo and managers take on an order, how long an 86 lasts, and why an action is
//! refused. The kitchen (`kitchen::otter`) runs them in the change's transaction; the relay makes
//! the calls (docs/otter.md).

use chrono::{Duration, NaiveTime, TimeZone};

use crate::record::CANCEL_REASONS;

/// The range an estimate is kept in (agent config `prep_estimate_min_minutes` /
/// `prep_estimate_max_minutes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_minutes: u32,
    pub max_minutes: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            min_minutes: 5,
            max_minutes: 60,
        }
    }
}

impl Bounds {
    pub fn clamp(self, minutes: u32) -> u32 {
        minutes.clamp(self.min_minutes, self.max_minutes.max(self.min_minutes))
    }
}

/// The kitchen's settings for what it tells Otter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub bounds: Bounds,
    /// When the kitchen's day ends, local time (an 86 "until end of day" lasts until then).
    pub day_end: NaiveTime,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bounds: Bounds::default(),
            day_end: NaiveTime::from_hms_opt(4, 0, 0).unwrap_or_default(),
        }
    }
}

/// Units of one item at one station: what an order needs, or what a station has queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work<'a> {
    pub station_id: &'a str,
    pub item_id: &'a str,
    pub prep_seconds: u32,
}

/// The prep time an order is accepted with: the longest time any of its lines will take given
/// the station queues, in whole minutes rounded up, within `bounds`.
///
/// The model: a station works through its queue one item at a time, every unit of an item in
/// one batch (as the batch items count them). A line is done when its station has made what is
/// queued ahead of it (the prep time of each other item queued there) and then the line's own
/// item; a line whose item is already queued joins that batch.
pub fn estimate_minutes(needs: &[Work<'_>], queued: &[Work<'_>], bounds: Bounds) -> u32 {
    let longest = needs
        .iter()
        .map(|need| {
            let ahead: u64 = queued
                .iter()
                .filter(|q| q.station_id == need.station_id && q.item_id != need.item_id)
                .map(|q| u64::from(q.prep_seconds))
                .sum();
            ahead + u64::from(need.prep_seconds)
        })
        .max()
        .unwrap_or(0);
    let minutes = longest.div_ceil(60).min(u64::from(u32::MAX)) as u32;
    bounds.clamp(minutes)
}

/// What Expo or a manager does to an order on Otter's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderAction {
    /// Accept a manual store's order, with the estimate or another prep time.
    Accept { minutes: Option<u32> },
    /// Give Otter a new prep time (after accepting).
    PrepTime { minutes: u32 },
    /// Every station done (bumps what is left).
    Ready,
    /// Handed to the courier or the guest.
    HandOff,
    /// Refuse a manual store's order before accepting it: a cancel with a reason.
    Reject { reason: String },
    /// Cancel the order (managers).
    Cancel {
        reason: String,
        note: Option<String>,
    },
}

/// The most minutes a prep time may be given as.
pub const MAX_PREP_MINUTES: u32 = 240;

/// Why an order or 86 action was refused; the text is what the cook sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtterRejection {
    #[error("no such order")]
    NoSuchOrder,
    #[error("the order is {0}, not open")]
    NotOpen(String),
    #[error("the order is already accepted")]
    AlreadyAccepted,
    #[error("the order is not accepted yet: accept it first")]
    NotAccepted,
    #[error("a prep time is 1 to {MAX_PREP_MINUTES} minutes")]
    BadMinutes,
    #[error("unknown cancellation reason {0:?}")]
    UnknownReason(String),
    #[error("no such item")]
    NoSuchItem,
    #[error("{0} is already 86'd")]
    AlreadySuspended(String),
    #[error("{0} is not 86'd")]
    NotSuspended(String),
    #[error("86 for 1 to 24 hours")]
    BadHours,
    #[error("a staff PIN is needed")]
    PinRequired,
    #[error("wrong PIN")]
    WrongPin,
    #[error("a note is at most 200 characters")]
    NoteTooLong,
}

/// Checks a prep time.
pub fn check_minutes(minutes: u32) -> Result<u32, OtterRejection> {
    if (1..=MAX_PREP_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(OtterRejection::BadMinutes)
    }
}

/// Checks a cancellation reason against Otter's list.
pub fn check_reason(reason: &str) -> Result<(), OtterRejection> {
    if CANCEL_REASONS.contains(&reason) {
        Ok(())
    } else {
        Err(OtterRejection::UnknownReason(reason.to_owned()))
    }
}

/// How long an 86 lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until the kitchen's day ends (agent config `day_end`, local time).
    EndOfDay,
    /// For this many hours (1–24).
    Hours(u32),
    /// Until someone puts it back on.
    Back,
}

/// The most characters of an 86 note.
pub const MAX_NOTE_CHARS: usize = 200;

impl Until {
    /// When it ends (Unix ms; none: until put back), with the day ending at `day_end` local
    /// time in `zone`.
    pub fn until_ms<Z: TimeZone>(
        self,
        now_ms: i64,
        day_end: NaiveTime,
        zone: &Z,
    ) -> Result<Option<i64>, OtterRejection> {
        match self {
            Until::Back => Ok(None),
            Until::Hours(hours) if (1..=24).contains(&hours) => {
                Ok(Some(now_ms + i64::from(hours) * 3_600_000))
            }
            Until::Hours(_) => Err(OtterRejection::BadHours),
            Until::EndOfDay => Ok(Some(end_of_day(now_ms, day_end, zone))),
        }
    }
}

/// The next time the kitchen's day ends after `now_ms`: the first `day_end` (local) after it.
pub fn end_of_day<Z: TimeZone>(now_ms: i64, day_end: NaiveTime, zone: &Z) -> i64 {
    let now = zone.timestamp_millis_opt(now_ms).single();
    let Some(now) = now else {
        return now_ms + 24 * 3_600_000;
    };
    let today = now.date_naive();
    (0..=2)
        .filter_map(|days| {
            let day = today.checked_add_signed(Duration::days(days))?;
            // A day end in a DST gap does not exist: take the earliest valid reading.
            zone.from_local_datetime(&day.and_time(day_end)).earliest()
        })
        .map(|end| end.timestamp_millis())
        .find(|end| *end > now_ms)
        .unwrap_or(now_ms + 24 * 3_600_000)
}

/// The items the prep display proposes to 86 (it never 86es by itself): kept in stock (a PAR
/// above zero now), none on hand, none being made (no batch running), not 86'd already.
pub fn proposals<'a>(
    items: &'a [crate::prep::PrepItem],
    running: &std::collections::BTreeSet<&str>,
    suspended: &std::collections::BTreeSet<&str>,
) -> Vec<&'a crate::prep::PrepItem> {
    items
        .iter()
        .filter(|item| item.par.is_some_and(|par| par > 0) && item.on_hand == 0)
        .filter(|item| !running.contains(item.item_id.as_str()))
        .filter(|item| !suspended.contains(item.item_id.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn work<'a>(station_id: &'a str, item_id: &'a str, prep_seconds: u32) -> Work<'a> {
        Work {
            station_id,
            item_id,
            prep_seconds,
        }
    }

    #[test]
    fn the_estimate_is_the_longest_line_behind_its_station_queue() {
        let bounds = Bounds {
            min_minutes: 1,
            max_minutes: 90,
        };
        // Empty kitchen: the slowest line, rounded up (7 min + 1 s → 8).
        let needs = [work("grill", "burger", 421), work("fry", "fries", 180)];
        assert_eq!(estimate_minutes(&needs, &[], bounds), 8);
        // Fries queued behind 10 minutes of other fry items; burgers already queued join
        // their batch: fry 600 + 180 = 13 min beats grill 421 s.
        let queued = [
            work("fry", "wings", 300),
            work("fry", "onion-rings", 300),
            work("grill", "burger", 421),
            work("fry", "fries", 180),
        ];
        assert_eq!(estimate_minutes(&needs, &queued, bounds), 13);
        // Clamped both ways.
        assert_eq!(estimate_minutes(&[], &queued, bounds), 1);
        let tight = Bounds {
            min_minutes: 10,
            max_minutes: 12,
        };
        assert_eq!(estimate_minutes(&needs, &queued, tight), 12);
        assert_eq!(estimate_minutes(&needs, &[], tight), 10);
    }

    #[test]
    fn an_86_is_proposed_for_stocked_items_that_ran_out_and_are_not_being_made() {
        let item = |id: &str, par: Option<u32>, on_hand: u32| crate::prep::PrepItem {
            item_id: id.into(),
            name: id.into(),
            station_id: "prep".into(),
            unit: None,
            par,
            on_hand,
            to_make: 0,
            expired: 0,
            lots: Vec::new(),
        };
        let items = [
            item("salsa", Some(4), 0),
            item("guac", Some(4), 1),
            item("rice", Some(0), 0),
            item("beans", None, 0),
            item("slaw", Some(2), 0),
            item("queso", Some(2), 0),
        ];
        let running = std::collections::BTreeSet::from(["slaw"]);
        let suspended = std::collections::BTreeSet::from(["queso"]);
        let proposed: Vec<&str> = proposals(&items, &running, &suspended)
            .iter()
            .map(|item| item.item_id.as_str())
            .collect();
        assert_eq!(proposed, ["salsa"]);
    }

    #[test]
    fn prep_times_and_reasons_are_checked() {
        assert_eq!(check_minutes(0), Err(OtterRejection::BadMinutes));
        assert_eq!(check_minutes(15), Ok(15));
        assert_eq!(check_minutes(241), Err(OtterRejection::BadMinutes));
        assert_eq!(check_reason("RESTAURANT_TOO_BUSY"), Ok(()));
        assert_eq!(
            check_reason("BORED").map_err(|e| e.to_string()),
            Err("unknown cancellation reason \"BORED\"".to_owned())
        );
    }

    #[test]
    fn an_86_lasts_until_the_day_ends_for_hours_or_until_back() {
        let end = NaiveTime::from_hms_opt(4, 0, 0).expect("time");
        // 2026-12-02 22:30 UTC → 2026-12-03 04:00 UTC.
        let now = Utc
            .with_ymd_and_hms(2026, 12, 2, 22, 30, 0)
            .single()
            .expect("time")
            .timestamp_millis();
        let four = Utc
            .with_ymd_and_hms(2026, 12, 3, 4, 0, 0)
            .single()
            .expect("time")
            .timestamp_millis();
        assert_eq!(Until::EndOfDay.until_ms(now, end, &Utc), Ok(Some(four)));
        // At 01:00 the day still ends at 04:00 the same morning.
        let one = now + 150 * 60_000;
        assert_eq!(Until::EndOfDay.until_ms(one, end, &Utc), Ok(Some(four)));
        // Exactly at the end: the next day's.
        assert_eq!(
            Until::EndOfDay.until_ms(four, end, &Utc),
            Ok(Some(four + 86_400_000))
        );
        assert_eq!(
            Until::Hours(2).until_ms(now, end, &Utc),
            Ok(Some(now + 7_200_000))
        );
        assert_eq!(
            Until::Hours(25).until_ms(now, end, &Utc),
            Err(OtterRejection::BadHours)
        );
        assert_eq!(Until::Back.until_ms(now, end, &Utc), Ok(None));
    }
}
