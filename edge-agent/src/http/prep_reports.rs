//! The prep and transfer-unit reports as PDF (`/prep/report.pdf`, `/prep/transfers.pdf`) for a
//! local day, and the transfer units of the last days as JSON (`/api/transfers`) for the prep
//! display's transfer-unit view. Reads only: any paired device may, as for the prep display.

use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{Datelike, Days, NaiveDate};
use kitchen_daemon::clock::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, error, internal};
use crate::{
    pdf::{
        self,
        prep_report::{DayFacts, PrepReport},
        transfers_report::TransfersReport,
    },
    prep,
};

/// `/api/transfers` looks back this many days unless asked, and at most `MAX_DAYS`.
const DEFAULT_DAYS: u32 = 7;
const MAX_DAYS: u32 = 31;
/// No report is made for a day before this year.
const FIRST_YEAR: i32 = 2000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/prep/report.pdf", get(prep_report))
        .route("/prep/transfers.pdf", get(transfers_report))
        .route("/api/transfers", get(transfers))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    day: Option<String>,
}

/// The day asked for (default today), or why it is refused (a `400`).
fn day_of(
    query: Result<Query<DayQuery>, QueryRejection>,
    today: NaiveDate,
) -> Result<NaiveDate, String> {
    let Query(query) = query.map_err(|rejection| rejection.body_text())?;
    let Some(text) = query.day else {
        return Ok(today);
    };
    let day = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| format!("day {text:?} is not a date (YYYY-MM-DD)"))?;
    if day > today {
        return Err(format!("day {day} is in the future (today is {today})"));
    }
    // Nothing is older than the box; and dates near chrono's ends have no local midnight.
    if day.year() < FIRST_YEAR {
        return Err(format!("day {day} is before {FIRST_YEAR}"));
    }
    Ok(day)
}

/// The PDF, shown in the browser (printable from there), named after the kitchen and day.
fn pdf_response(bytes: Vec<u8>, name: &str, kitchen: &str, day: NaiveDate) -> Response {
    // A kitchen id is the box's own, but a header must not carry a quote or a line break.
    let kitchen: String = kitchen
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}-{kitchen}-{day}.pdf\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /prep/report.pdf[?day=YYYY-MM-DD]`: per item what was prepped, received, used and
/// discarded that day, on hand against PAR (now for today, at the day's end for a past day),
/// what is below PAR, what was thrown away.
async fn prep_report(
    State(state): State<AppState>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Response {
    let now = now_ms();
    let (today, minute) = prep::local_day(now);
    let day = match day_of(query, today) {
        Ok(day) => day,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let (start, end) = prep::day_span_ms(day);
    // Today: as things stand now. A past day: as it ended.
    let (at, minute, as_of) = if day == today {
        (now, minute, Some(prep::local_time(now)))
    } else {
        (end - 1, 24 * 60 - 1, None)
    };
    let facts = state
        .readers
        .with(move |store| {
            Ok(DayFacts {
                moves: store.day_moves(start, end)?,
                open: store.stock_open_at(at)?,
                discarded: store.discarded_between(start, end)?,
                transfers_received: store.transfers_between(start, end)?.len(),
            })
        })
        .await;
    let facts = match facts {
        Ok(facts) => facts,
        Err(error) => return internal(error),
    };
    let kitchen = &state.live.kitchen_id;
    let report = PrepReport::build(
        &state.live.reference.get(),
        kitchen,
        day,
        as_of,
        minute,
        facts,
        prep::local_time,
    );
    pdf_response(pdf::render(&report.document()), "prep", kitchen, day)
}

/// `GET /prep/transfers.pdf[?day=YYYY-MM-DD]`: the transfer units received that day and where
/// their stock is now.
async fn transfers_report(
    State(state): State<AppState>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Response {
    let (today, _) = prep::local_day(now_ms());
    let day = match day_of(query, today) {
        Ok(day) => day,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let (start, end) = prep::day_span_ms(day);
    let units = match state
        .readers
        .with(move |store| store.transfers_between(start, end))
        .await
    {
        Ok(units) => units,
        Err(error) => return internal(error),
    };
    let kitchen = &state.live.kitchen_id;
    let report = TransfersReport::build(
        &state.live.reference.get(),
        kitchen,
        day,
        &units,
        prep::local_time,
    );
    pdf_response(pdf::render(&report.document()), "transfers", kitchen, day)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransfersQuery {
    days: Option<String>,
}

/// `GET /api/transfers[?days=7]`: every transfer unit received today and the `days − 1` days
/// before (1–31), newest first, each with its item's name, the local day and time it came and
/// its `state` (`open`, `used`, `discarded`, `unlinked`).
async fn transfers(
    State(state): State<AppState>,
    query: Result<Query<TransfersQuery>, QueryRejection>,
) -> Response {
    let days = match query {
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
        Ok(Query(TransfersQuery { days: None })) => DEFAULT_DAYS,
        Ok(Query(TransfersQuery { days: Some(text) })) => match text.parse::<u32>() {
            Ok(days) if (1..=MAX_DAYS).contains(&days) => days,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("days must be a whole number from 1 to {MAX_DAYS}, not {text:?}"),
                );
            }
        },
    };
    let now = now_ms();
    let (today, _) = prep::local_day(now);
    let first = today
        .checked_sub_days(Days::new(u64::from(days - 1)))
        .unwrap_or(today);
    let (start, _) = prep::day_span_ms(first);
    let (_, end) = prep::day_span_ms(today);
    let units = match state
        .readers
        .with(move |store| store.transfers_between(start, end))
        .await
    {
        Ok(units) => units,
        Err(error) => return internal(error),
    };
    let reference = state.live.reference.get();
    let transfers: Vec<_> = units
        .iter()
        .rev()
        .map(|unit| {
            let mut body = json!(unit);
            let received = unit.transfer.received_at_ms;
            body["item_name"] = json!(
                unit.transfer
                    .item_id
                    .as_deref()
                    .and_then(|id| reference.item(id))
                    .map(|item| item.name.clone())
            );
            body["received_on"] = json!(prep::local_day(received).0);
            body["received_time"] = json!(prep::local_time(received));
            body
        })
        .collect();
    Json(json!({ "today": today, "days": days, "transfers": transfers })).into_response()
}
