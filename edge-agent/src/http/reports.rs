//! The speed-of-service report on the box (docs/floor.md#reports): `GET /reports` (the page,
//! server-rendered, charts as inline SVG) and `GET /reports.csv`, for a manager device, over
//! `?from=YYYY-MM-DD&to=YYYY-MM-DD` (local days, default today, at most 31 days), read from
//! SQLite on a blocking thread.

use axum::{
    Extension, Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{Local, NaiveDate, NaiveDateTime};
use kitchen_daemon::clock::now_ms;
use kitchen_proto::report::{Period, Report, render};
use serde::Deserialize;

use super::{
    AppState, error,
    guard::{Caller, forbid},
    internal,
};
use crate::{device::Action, prep};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports.csv", get(csv))
}

#[derive(Deserialize)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The wall-clock time of `ms` on the box (its time zone is the kitchen's).
fn local(ms: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&Local)
        .naive_local()
}

/// The report for the query's period, or the answer to give instead.
async fn build(
    state: &AppState,
    device: &crate::device::Device,
    query: PeriodQuery,
) -> Result<(Report, NaiveDate), Response> {
    if let Some(refused) = forbid(device, Action::Manage, "read the reports") {
        return Err(refused);
    }
    let (today, _) = prep::local_day(now_ms());
    let period = Period::parse(query.from.as_deref(), query.to.as_deref(), today)
        .map_err(|reason| error(StatusCode::BAD_REQUEST, reason))?;
    let reference = state.live.reference.get();
    let stations: Vec<(String, String)> = reference
        .stations
        .iter()
        .map(|station| (station.id.clone(), station.name.clone()))
        .collect();
    let (from_ms, to_ms) = (
        prep::day_start_ms(period.from, &Local),
        prep::day_start_ms(period.to + chrono::Days::new(1), &Local),
    );
    let (tickets, sessions) = state
        .readers
        .with_blocking(move |store| store.report_facts(from_ms, to_ms, &reference, local))
        .await
        .map_err(internal)?;
    Ok((Report::build(period, &stations, &tickets, &sessions), today))
}

/// `GET /reports`: the page.
async fn page(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let (report, today) = match build(&state, &device, query).await {
        Ok(built) => built,
        Err(answer) => return answer,
    };
    let day = |date: NaiveDate| date.format("%Y-%m-%d").to_string();
    let link = |label: &str, from: NaiveDate, to: NaiveDate| {
        format!(
            "<a href=\"/reports?from={}&amp;to={}\">{label}</a>",
            day(from),
            day(to)
        )
    };
    let yesterday = today - chrono::Days::new(1);
    let week = Period::last_days(today, 7);
    let period = report.period;
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Reports — {kitchen}</title><style>{style}</style></head><body>\
         <h1>Speed of service — {kitchen}</h1>\
         <nav>{today_link}{yesterday_link}{week_link}\
         <a id=\"csv\" href=\"/reports.csv?from={from}&amp;to={to}\">CSV</a>\
         <a href=\"/\">Display</a></nav>\
         <form class=\"period\" method=\"get\" action=\"/reports\">\
         <label>From <input type=\"date\" name=\"from\" value=\"{from}\"></label>\
         <label>To <input type=\"date\" name=\"to\" value=\"{to}\"></label>\
         <button type=\"submit\">Show</button></form>{body}</body></html>",
        kitchen = render::escape(&state.live.kitchen_id),
        style = render::STYLE,
        today_link = link("Today", today, today),
        yesterday_link = link("Yesterday", yesterday, yesterday),
        week_link = link("Last 7 days", week.from, week.to),
        from = day(period.from),
        to = day(period.to),
        body = render::body(&report),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// `GET /reports.csv`: the same figures, a line per station and per hour.
async fn csv(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let (report, _) = match build(&state, &device, query).await {
        Ok(built) => built,
        Err(answer) => return answer,
    };
    let filename = format!(
        "attachment; filename=\"report-{}-{}-{}.csv\"",
        state
            .live
            .kitchen_id
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        report.period.from,
        report.period.to
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        render::csv(&report),
    )
        .into_response()
}
