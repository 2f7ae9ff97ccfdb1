//! The speed-of-service report (docs/floor.md#reports), shared by the box (`/reports`, from its
//! SQLite store) and the relay (`/reports`, from the records the boxes synced to PostgreSQL), so
//! both count the same way. Each side turns what it stores into [`TicketFact`]s and
//! [`SessionFact`]s; [`Report::build`] does the counting and `render` the page, its charts and
//! the CSV. Pure: the callers do the reading and the time-zone arithmetic.
//!
//! What is counted, per station, for tickets that **arrived** in the period (local days, both
//! ends included):
//! - tickets: orders that needed the station (cancelled orders are left out);
//! - ticket time: from arrival to the bump at the station (the last bump when it was recalled and
//!   bumped again), p50 and p90 by nearest rank, over the bumped tickets;
//! - late: bumped after the order's promised time; on time: the other bumped tickets;
//! - items: the units the station makes for those tickets; items per hour: items divided by the
//!   station's active hours (the hours of the day, on each day, in which at least one of its
//!   tickets arrived);
//! - batch sessions started in the period, and how many of them were completed.

pub mod render;

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Longest period a report covers, in days.
pub const MAX_DAYS: i64 = 31;

/// One order's ticket at one station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFact {
    pub station_id: String,
    /// When it arrived, on the kitchen's clock (local wall time): the day and hour it counts in.
    pub arrived_local: NaiveDateTime,
    pub arrived_ms: i64,
    /// When the order is promised.
    pub due_ms: i64,
    /// When the station bumped it; `None`: not bumped there.
    pub bumped_ms: Option<i64>,
    /// Units of the station's items on it.
    pub units: u32,
}

/// A batch session at a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFact {
    pub station_id: String,
    pub started_local: NaiveDateTime,
    pub completed: bool,
}

/// Local days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error("{field} {value:?} is not a date (YYYY-MM-DD)")]
    NotADate { field: &'static str, value: String },
    #[error("from {from} is after to {to}")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("a report covers at most {MAX_DAYS} days ({from} to {to} is {days})")]
    TooLong {
        from: NaiveDate,
        to: NaiveDate,
        days: i64,
    },
}

impl Period {
    /// `from`/`to` as given (`YYYY-MM-DD`), each defaulting to `today`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, PeriodError> {
        let date = |field: &'static str, value: Option<&str>| match value {
            None | Some("") => Ok(today),
            Some(value) => {
                NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| PeriodError::NotADate {
                    field,
                    value: value.to_owned(),
                })
            }
        };
        let period = Self {
            from: date("from", from)?,
            to: date("to", to)?,
        };
        if period.from > period.to {
            return Err(PeriodError::Reversed {
                from: period.from,
                to: period.to,
            });
        }
        if period.days() > MAX_DAYS {
            return Err(PeriodError::TooLong {
                from: period.from,
                to: period.to,
                days: period.days(),
            });
        }
        Ok(period)
    }

    /// The last `days` days up to and including `today`.
    pub fn last_days(today: NaiveDate, days: u32) -> Self {
        Self {
            from: today - chrono::Days::new(u64::from(days.max(1) - 1)),
            to: today,
        }
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub fn contains(&self, at: NaiveDateTime) -> bool {
        (self.from..=self.to).contains(&at.date())
    }
}

/// The figures of one hour of the day (summed over the period's days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourFigures {
    pub tickets: u32,
    pub units: u64,
    /// Median ticket time of the bumped tickets that arrived in this hour.
    pub p50_s: Option<u32>,
}

/// One station's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationReport {
    pub station_id: String,
    pub name: String,
    pub tickets: u32,
    pub bumped: u32,
    pub p50_s: Option<u32>,
    pub p90_s: Option<u32>,
    pub late: u32,
    pub units: u64,
    /// Hours (day, hour of day) in which at least one of its tickets arrived.
    pub active_hours: u32,
    pub sessions_started: u32,
    pub sessions_completed: u32,
    /// Index = hour of the day, 0–23.
    pub hours: Vec<HourFigures>,
}

impl StationReport {
    /// Bumped tickets not late, as a share of the bumped ones.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.bumped > 0).then(|| f64::from(self.bumped - self.late) / f64::from(self.bumped))
    }

    pub fn items_per_hour(&self) -> Option<f64> {
        (self.active_hours > 0).then(|| self.units as f64 / f64::from(self.active_hours))
    }
}

/// The report for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub period: Period,
    pub stations: Vec<StationReport>,
}

impl Report {
    /// Counts `tickets` and `sessions` that fall in `period`, per station: the `stations` given
    /// (id, name) first in their order, then any other station a fact names, by id.
    pub fn build(
        period: Period,
        stations: &[(String, String)],
        tickets: &[TicketFact],
        sessions: &[SessionFact],
    ) -> Self {
        let mut order: Vec<(String, String)> = stations.to_vec();
        let named: BTreeSet<&str> = stations.iter().map(|(id, _)| id.as_str()).collect();
        let others: BTreeSet<&str> = tickets
            .iter()
            .filter(|fact| period.contains(fact.arrived_local))
            .map(|fact| fact.station_id.as_str())
            .chain(
                sessions
                    .iter()
                    .filter(|fact| period.contains(fact.started_local))
                    .map(|fact| fact.station_id.as_str()),
            )
            .filter(|id| !named.contains(id))
            .collect();
        order.extend(others.into_iter().map(|id| (id.to_owned(), id.to_owned())));
        let stations = order
            .into_iter()
            .map(|(id, name)| station(period, id, name, tickets, sessions))
            .collect();
        Self { period, stations }
    }
}

fn station(
    period: Period,
    station_id: String,
    name: String,
    tickets: &[TicketFact],
    sessions: &[SessionFact],
) -> StationReport {
    let mine: Vec<&TicketFact> = tickets
        .iter()
        .filter(|fact| fact.station_id == station_id && period.contains(fact.arrived_local))
        .collect();
    let mut times = Vec::new();
    let mut hour_times: Vec<Vec<u32>> = vec![Vec::new(); 24];
    let mut hours = vec![HourFigures::default(); 24];
    let mut active = BTreeSet::new();
    let mut late = 0;
    for fact in &mine {
        let hour = fact.arrived_local.hour() as usize;
        hours[hour].tickets += 1;
        hours[hour].units += u64::from(fact.units);
        active.insert((fact.arrived_local.num_days_from_ce(), hour));
        if let Some(bumped) = fact.bumped_ms {
            let seconds =
                u32::try_from((bumped - fact.arrived_ms).max(0) / 1000).unwrap_or(u32::MAX);
            times.push(seconds);
            hour_times[hour].push(seconds);
            if bumped > fact.due_ms {
                late += 1;
            }
        }
    }
    for (figures, mut times) in hours.iter_mut().zip(hour_times) {
        figures.p50_s = percentile(&mut times, 50);
    }
    let started: Vec<&SessionFact> = sessions
        .iter()
        .filter(|fact| fact.station_id == station_id && period.contains(fact.started_local))
        .collect();
    StationReport {
        tickets: count(mine.len()),
        bumped: count(times.len()),
        p50_s: percentile(&mut times, 50),
        p90_s: percentile(&mut times, 90),
        late,
        units: mine.iter().map(|fact| u64::from(fact.units)).sum(),
        active_hours: count(active.len()),
        sessions_started: count(started.len()),
        sessions_completed: count(started.iter().filter(|fact| fact.completed).count()),
        hours,
        station_id,
        name,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The nearest-rank percentile: the smallest value with at least `p` % of the values at or
/// below it. `None` for no values.
pub fn percentile(values: &mut [u32], p: u32) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (values.len() * p as usize).div_ceil(100).max(1);
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests;
