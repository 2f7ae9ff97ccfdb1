use chrono::{NaiveDate, NaiveDateTime};

use super::{
    HourFigures, Period, PeriodError, Report, SessionFact, TicketFact, percentile, render,
};

const MINUTE: i64 = 60_000;

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("time")
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("day")
}

/// A ticket arriving at `arrived`, due 15 minutes later, bumped `bumped_after` minutes later.
fn ticket(station: &str, arrived: &str, bumped_after: Option<i64>, units: u32) -> TicketFact {
    let arrived_local = at(arrived);
    let arrived_ms = arrived_local.and_utc().timestamp_millis();
    TicketFact {
        station_id: station.to_owned(),
        arrived_local,
        arrived_ms,
        due_ms: arrived_ms + 15 * MINUTE,
        bumped_ms: bumped_after.map(|minutes| arrived_ms + minutes * MINUTE),
        units,
    }
}

fn session(station: &str, started: &str, completed: bool) -> SessionFact {
    SessionFact {
        station_id: station.to_owned(),
        started_local: at(started),
        completed,
    }
}

fn sample() -> Report {
    let period = Period::parse(Some("2026-12-01"), None, day("2026-12-01")).expect("period");
    let stations = [
        ("grill".to_owned(), "Grill".to_owned()),
        ("fry".to_owned(), "Fry".to_owned()),
    ];
    let tickets = [
        ticket("grill", "2026-12-01 12:05", Some(10), 2),
        ticket("grill", "2026-12-01 12:30", Some(20), 1),
        ticket("grill", "2026-12-01 13:10", Some(5), 3),
        ticket("grill", "2026-12-01 13:40", None, 1),
        // The day before: not in the period.
        ticket("grill", "2026-11-30 23:50", Some(1), 9),
        ticket("pizza", "2026-12-01 18:00", Some(15), 1),
    ];
    let sessions = [
        session("grill", "2026-12-01 12:00", true),
        session("grill", "2026-12-01 13:00", false),
        session("fry", "2026-12-02 09:00", true),
    ];
    Report::build(period, &stations, &tickets, &sessions)
}

#[test]
fn a_station_is_counted_from_its_tickets_in_the_period() {
    let report = sample();
    let ids: Vec<&str> = report
        .stations
        .iter()
        .map(|station| station.station_id.as_str())
        .collect();
    // The reference's stations in order, then one only a ticket names.
    assert_eq!(ids, ["grill", "fry", "pizza"]);
    let grill = &report.stations[0];
    assert_eq!(
        (
            grill.tickets,
            grill.bumped,
            grill.p50_s,
            grill.p90_s,
            grill.late,
            grill.units,
            grill.active_hours,
            grill.sessions_started,
            grill.sessions_completed,
        ),
        (4, 3, Some(600), Some(1200), 1, 7, 2, 2, 1)
    );
    assert_eq!(grill.on_time_rate(), Some(2.0 / 3.0));
    assert_eq!(grill.items_per_hour(), Some(3.5));
    assert_eq!(
        grill.hours[12],
        HourFigures {
            tickets: 2,
            units: 3,
            p50_s: Some(600)
        }
    );
    assert_eq!(
        grill.hours[13],
        HourFigures {
            tickets: 2,
            units: 4,
            p50_s: Some(300)
        }
    );
    assert_eq!(grill.hours[23], HourFigures::default());

    let fry = &report.stations[1];
    assert_eq!(
        (
            fry.tickets,
            fry.p50_s,
            fry.sessions_started,
            fry.on_time_rate()
        ),
        (0, None, 0, None)
    );
    assert_eq!(report.stations[2].name, "pizza");
}

#[test]
fn percentiles_are_by_nearest_rank() {
    let mut ten: Vec<u32> = (1..=10).rev().collect();
    assert_eq!(percentile(&mut ten, 50), Some(5));
    assert_eq!(percentile(&mut ten, 90), Some(9));
    assert_eq!(percentile(&mut ten, 100), Some(10));
    assert_eq!(percentile(&mut [7], 90), Some(7));
    assert_eq!(percentile(&mut [], 50), None);
}

#[test]
fn periods_are_checked() {
    let today = day("2026-12-03");
    assert_eq!(
        Period::parse(None, None, today),
        Ok(Period {
            from: today,
            to: today
        })
    );
    assert_eq!(Period::last_days(today, 7).from, day("2026-11-27"));
    assert_eq!(Period::last_days(today, 7).days(), 7);
    assert_eq!(
        Period::parse(Some("2026-12-04"), Some("2026-12-03"), today),
        Err(PeriodError::Reversed {
            from: day("2026-12-04"),
            to: today
        })
    );
    assert_eq!(
        Period::parse(Some("3 Dec"), None, today)
            .expect_err("not a date")
            .to_string(),
        "from \"3 Dec\" is not a date (YYYY-MM-DD)"
    );
    assert_eq!(
        Period::parse(Some("2026-10-01"), None, today)
            .expect_err("too long")
            .to_string(),
        "a report covers at most 31 days (2026-10-01 to 2026-12-03 is 64)"
    );
}

#[test]
fn the_page_shows_each_station_and_charts_its_hours() {
    let html = render::body(&sample());
    assert!(html.contains("<p class=\"muted\" id=\"period\">2026-12-01 to 2026-12-01 (1 day;"));
    assert!(html.contains(
        "<tr data-station=\"grill\"><td>Grill</td><td>4</td><td>3</td><td>10:00</td>\
         <td>20:00</td><td>1</td><td>66.7 %</td><td>7</td><td>3.5</td><td>2</td><td>1</td></tr>"
    ));
    assert!(html.contains(
        "<tr data-station=\"fry\"><td>Fry</td><td>0</td><td>0</td><td>—</td><td>—</td>\
         <td>0</td><td>—</td><td>0</td><td>—</td><td>0</td><td>0</td></tr>"
    ));
    // Charts for stations with tickets only: grill and pizza, two each.
    assert_eq!(html.matches("<svg ").count(), 4);
    assert!(html.contains("<title>12:00 2 tickets</title>"));
    assert!(html.contains("<title>13:00 5.0 min</title>"));
    assert!(!html.contains("<h2>Fry</h2>"));
}

#[test]
fn the_csv_has_a_total_and_24_hours_per_station() {
    let csv = render::csv(&sample());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 3 * 25);
    assert_eq!(
        lines[0],
        "from,to,station_id,station,hour,tickets,bumped,p50_seconds,p90_seconds,late,\
         on_time_rate,items,items_per_hour,batches_started,batches_completed"
    );
    assert_eq!(
        lines[1],
        "2026-12-01,2026-12-01,grill,Grill,all,4,3,600,1200,1,0.6667,7,3.50,2,1"
    );
    assert_eq!(
        lines[1 + 13],
        "2026-12-01,2026-12-01,grill,Grill,12,2,,600,,,,3,,,"
    );
    assert_eq!(
        lines[26],
        "2026-12-01,2026-12-01,fry,Fry,all,0,0,,,0,,0,,0,0"
    );
}

#[test]
fn csv_fields_are_quoted_and_never_formulas() {
    let report = Report::build(
        Period::last_days(day("2026-12-01"), 1),
        &[("a".to_owned(), "=cmd|' /C calc'!A0, \"x\"".to_owned())],
        &[],
        &[],
    );
    let csv = render::csv(&report);
    assert!(
        csv.lines()
            .nth(1)
            .expect("row")
            .starts_with("2026-12-01,2026-12-01,a,\"'=cmd|' /C calc'!A0, \"\"x\"\"\",all,")
    );
}
