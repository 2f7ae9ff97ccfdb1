//! Head office's speed-of-service report (docs/floor.md#reports), on the admin listener behind
//! the operator sign-in of the fleet page: `GET /reports` (a kitchen, a period and a time zone
//! to choose; the report as the box draws it) and `GET /reports.csv`. Counted by the same code
//! as the box's (`kitchen_proto::report`), from what the boxes synced: `kitchen.order_events`
//! (each order's last ticket, its cancellation, its bumps and recalls) and
//! `kitchen.batch_sessions`. Days and hours are the chosen time zone's, as PostgreSQL knows it.

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use kitchen_proto::report::{
    Period, PeriodError, Report, SessionFact, TicketFact,
    render::{self, escape},
};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::fleet::page::{self, FleetState};

/// The longest a report's queries may take.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn router(state: FleetState) -> Router {
    Router::new()
        .route("/reports", get(report_page))
        .route("/reports.csv", get(report_csv))
        .route("/reports/static/report.css", get(style))
        .layer(axum::middleware::map_response(page::secure_headers))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    pub kitchen: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// An IANA time zone name (`Europe/London`); default UTC.
    pub tz: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Period(#[from] PeriodError),
    #[error("unknown kitchen {0:?}")]
    UnknownKitchen(String),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the report's queries took longer than {}s", QUERY_TIMEOUT.as_secs())]
    Timeout,
}

impl ReportError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Period(_) | Self::TimeZone(_) => StatusCode::BAD_REQUEST,
            Self::UnknownKitchen(_) => StatusCode::NOT_FOUND,
            Self::Database(_) | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The status to answer with; the relay's own failures (not the request's) are logged.
    fn logged_status(&self) -> StatusCode {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "report failed");
        }
        status
    }
}

/// A time zone's UTC offsets, one per hour from a little before the period to a little after.
struct Offsets(Vec<(i64, i64)>);

impl Offsets {
    /// The wall-clock time of `ms` in the zone.
    fn local(&self, ms: i64) -> NaiveDateTime {
        let index = self.0.partition_point(|(start_ms, _)| *start_ms <= ms);
        let offset_ms = index
            .checked_sub(1)
            .and_then(|index| self.0.get(index))
            .or(self.0.first())
            .map_or(0, |(_, offset)| *offset);
        DateTime::from_timestamp_millis(ms + offset_ms)
            .unwrap_or_default()
            .naive_utc()
    }
}

/// The report of `kitchen` for the period in `tz` (`today` is the zone's today).
pub async fn build(
    pool: &PgPool,
    kitchen: &str,
    query: &ReportQuery,
) -> Result<Report, ReportError> {
    tokio::time::timeout(QUERY_TIMEOUT, build_inner(pool, kitchen, query))
        .await
        .map_err(|_| ReportError::Timeout)?
}

async fn build_inner(
    pool: &PgPool,
    kitchen: &str,
    query: &ReportQuery,
) -> Result<Report, ReportError> {
    let tz = query
        .tz
        .as_deref()
        .filter(|tz| !tz.is_empty())
        .unwrap_or("UTC");
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let today: chrono::NaiveDate = sqlx::query_scalar("SELECT (now() AT TIME ZONE $1)::date")
        .bind(tz)
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22023") => {
                ReportError::TimeZone(tz.to_owned())
            }
            _ => ReportError::Database(error),
        })?;
    let period = Period::parse(query.from.as_deref(), query.to.as_deref(), today)?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM kitchen.kitchens WHERE kitchen_id = $1)")
            .bind(kitchen)
            .fetch_one(&mut *tx)
            .await?;
    if !known {
        return Err(ReportError::UnknownKitchen(kitchen.to_owned()));
    }
    let (start, end): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT $1::date::timestamp AT TIME ZONE $3, ($2::date + 1)::timestamp AT TIME ZONE $3",
    )
    .bind(period.from)
    .bind(period.to)
    .bind(tz)
    .fetch_one(&mut *tx)
    .await?;
    let offsets = Offsets(
        sqlx::query_as(
            "SELECT (extract(epoch FROM g) * 1000)::bigint,
                    ((extract(epoch FROM g AT TIME ZONE $3) - extract(epoch FROM g)) * 1000)::bigint
             FROM generate_series(date_trunc('hour', $1 - interval '1 day'),
                                  $2 + interval '1 day', interval '1 hour') AS g",
        )
        .bind(start)
        .bind(end)
        .bind(tz)
        .fetch_all(&mut *tx)
        .await?,
    );
    let stations: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, name FROM kitchen.ref_stations WHERE kitchen_id = $1 ORDER BY position, id",
    )
    .bind(kitchen)
    .fetch_all(&mut *tx)
    .await?;
    // Bumps come after arrival, and a box that was offline syncs late: a day either side.
    let events: Vec<(String, String, Value, i64)> = sqlx::query_as(
        "SELECT order_id, kind, data, (extract(epoch FROM occurred_at) * 1000)::bigint
         FROM kitchen.order_events
         WHERE kitchen_id = $1
           AND occurred_at >= $2 - interval '1 day' AND occurred_at < $3 + interval '1 day'
           AND kind IN ('order.created', 'order.updated', 'order.cancelled', 'order.bumped',
                        'order.recalled')
         ORDER BY occurred_at, record_id",
    )
    .bind(kitchen)
    .bind(start)
    .bind(end)
    .fetch_all(&mut *tx)
    .await?;
    let sessions: Vec<(String, i64, bool)> = sqlx::query_as(
        "SELECT station_id, (extract(epoch FROM started_at) * 1000)::bigint,
                completed_at IS NOT NULL
         FROM kitchen.batch_sessions
         WHERE kitchen_id = $1 AND started_at >= $2 AND started_at < $3",
    )
    .bind(kitchen)
    .bind(start)
    .bind(end)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let tickets = ticket_facts(&events, |ms| offsets.local(ms));
    let sessions: Vec<SessionFact> = sessions
        .into_iter()
        .map(|(station_id, started_ms, completed)| SessionFact {
            station_id,
            started_local: offsets.local(started_ms),
            completed,
        })
        .collect();
    Ok(Report::build(period, &stations, &tickets, &sessions))
}

/// Each order's last ticket, unless it was cancelled, with the time of each station's last bump
/// (a recall takes it back), as one fact per station the ticket's lines name.
fn ticket_facts(
    events: &[(String, String, Value, i64)],
    local: impl Fn(i64) -> NaiveDateTime,
) -> Vec<TicketFact> {
    #[derive(Default)]
    struct Folded<'a> {
        ticket: Option<&'a Value>,
        cancelled: bool,
        bumps: BTreeMap<String, i64>,
    }
    let mut orders: BTreeMap<&str, Folded> = BTreeMap::new();
    for (order_id, kind, data, at_ms) in events {
        let order = orders.entry(order_id.as_str()).or_default();
        let stations = || {
            data["stations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
        };
        match kind.as_str() {
            "order.created" | "order.updated" if data["order"].is_object() => {
                order.ticket = Some(&data["order"]);
            }
            "order.cancelled" => order.cancelled = true,
            "order.bumped" => order
                .bumps
                .extend(stations().map(|station| (station, *at_ms))),
            "order.recalled" => {
                for station in stations() {
                    order.bumps.remove(&station);
                }
            }
            _ => {}
        }
    }
    let mut facts = Vec::new();
    for order in orders.values().filter(|order| !order.cancelled) {
        let Some(ticket) = order.ticket else { continue };
        let Some(arrived_ms) = ticket["received_at_ms"].as_i64() else {
            continue;
        };
        let mut units = BTreeMap::new();
        station_units(&ticket["lines"], 1, &mut units);
        for (station_id, units) in units {
            facts.push(TicketFact {
                bumped_ms: order.bumps.get(&station_id).copied(),
                station_id,
                arrived_local: local(arrived_ms),
                arrived_ms,
                due_ms: ticket["promised_at_ms"].as_i64().unwrap_or(arrived_ms),
                units,
            });
        }
    }
    facts
}

/// Units per station of a ticket's lines: a line's quantity times its parents' (a modifier
/// counts per unit of what it modifies), at the station the box resolved it to.
fn station_units(lines: &Value, times: u32, units: &mut BTreeMap<String, u32>) {
    for line in lines.as_array().into_iter().flatten() {
        let quantity = u32::try_from(line["quantity"].as_u64().unwrap_or(0))
            .unwrap_or(u32::MAX)
            .saturating_mul(times);
        if let Some(station) = line["station_id"].as_str() {
            let total = units.entry(station.to_owned()).or_default();
            *total = total.saturating_add(quantity);
        }
        station_units(&line["modifiers"], quantity, units);
    }
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        render::STYLE,
    )
        .into_response()
}

/// The kitchen and the period chosen, or the page's chooser.
async fn report_page(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Response {
    let operator = match page::operator(&state, &headers).await {
        Ok(name) => name,
        Err(response) if response.status() == StatusCode::UNAUTHORIZED => {
            return page::sign_in(None);
        }
        Err(response) => return response,
    };
    let kitchens: Vec<String> =
        match sqlx::query_scalar("SELECT kitchen_id FROM kitchen.kitchens ORDER BY kitchen_id")
            .fetch_all(&state.pool)
            .await
        {
            Ok(kitchens) => kitchens,
            Err(error) => return failed(&ReportError::Database(error)),
        };
    let chosen = query.kitchen.clone().filter(|kitchen| !kitchen.is_empty());
    let (status, content) = match &chosen {
        None => (
            StatusCode::OK,
            "<p class=\"muted\">Choose a kitchen and a period.</p>".to_owned(),
        ),
        Some(kitchen) => match build(&state.pool, kitchen, &query).await {
            Ok(report) => (StatusCode::OK, render::body(&report)),
            Err(error) => (
                error.logged_status(),
                format!(
                    "<p class=\"error\" id=\"error\">{}</p>",
                    escape(&error.to_string())
                ),
            ),
        },
    };
    let options: String = kitchens
        .iter()
        .map(|kitchen| {
            format!(
                "<option{}>{}</option>",
                if Some(kitchen) == chosen.as_ref() {
                    " selected"
                } else {
                    ""
                },
                escape(kitchen)
            )
        })
        .collect();
    let value = |field: &Option<String>| escape(field.as_deref().unwrap_or_default());
    let csv = chosen.as_ref().map_or_else(String::new, |kitchen| {
        format!(
            "<a id=\"csv\" href=\"/reports.csv?kitchen={}&amp;from={}&amp;to={}&amp;tz={}\">CSV</a>",
            query_escape(kitchen),
            query_escape(query.from.as_deref().unwrap_or_default()),
            query_escape(query.to.as_deref().unwrap_or_default()),
            query_escape(query.tz.as_deref().unwrap_or_default()),
        )
    });
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Reports{title}</title>\
         <link rel=\"stylesheet\" href=\"/reports/static/report.css\"></head><body>\
         <h1>Speed of service{title}</h1>\
         <nav><a href=\"/fleet\">Fleet</a>{csv}<span class=\"muted\">{operator}</span></nav>\
         <form class=\"period\" method=\"get\" action=\"/reports\">\
         <label>Kitchen <select name=\"kitchen\">{options}</select></label>\
         <label>From <input type=\"date\" name=\"from\" value=\"{from}\"></label>\
         <label>To <input type=\"date\" name=\"to\" value=\"{to}\"></label>\
         <label>Time zone <input name=\"tz\" value=\"{tz}\" placeholder=\"UTC\"></label>\
         <button type=\"submit\">Show</button></form>{content}</body></html>",
        title = chosen
            .as_ref()
            .map_or_else(String::new, |kitchen| format!(" — {}", escape(kitchen))),
        operator = escape(&operator),
        from = value(&query.from),
        to = value(&query.to),
        tz = value(&query.tz),
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// `GET /reports.csv?kitchen=…&from=…&to=…&tz=…`.
async fn report_csv(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Response {
    if let Err(response) = page::operator(&state, &headers).await {
        return response;
    }
    let Some(kitchen) = query.kitchen.clone().filter(|kitchen| !kitchen.is_empty()) else {
        return failed(&ReportError::UnknownKitchen(String::new()));
    };
    match build(&state.pool, &kitchen, &query).await {
        Ok(report) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"report-{}-{}-{}.csv\"",
                        kitchen.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                        report.period.from,
                        report.period.to
                    ),
                ),
            ],
            render::csv(&report),
        )
            .into_response(),
        Err(error) => failed(&error),
    }
}

fn failed(error: &ReportError) -> Response {
    (
        error.logged_status(),
        axum::Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response()
}

/// Percent-encodes a query value.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            byte => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_ticket_counts_at_the_stations_of_its_lines_until_cancelled() {
        let ticket = |lines: Value| json!({"order": {"received_at_ms": 1_000, "promised_at_ms": 900_000, "lines": lines}});
        let burger_meal = json!([{"quantity": 2, "station_id": "grill", "modifiers": [
            {"quantity": 1, "station_id": null, "modifiers": [
                {"quantity": 1, "station_id": "fry", "modifiers": []}]}]}]);
        let event = |order: &str, kind: &str, data: Value, at: i64| {
            (order.to_owned(), kind.to_owned(), data, at)
        };
        let events = [
            event("o1", "order.created", ticket(json!([])), 1_000),
            event("o1", "order.updated", ticket(burger_meal), 2_000),
            event(
                "o1",
                "order.bumped",
                json!({"stations": ["grill", "fry"]}),
                60_000,
            ),
            event("o1", "order.recalled", json!({"stations": ["fry"]}), 61_000),
            event(
                "o1",
                "order.bumped",
                json!({"stations": ["grill"]}),
                1_000_000,
            ),
            event(
                "o2",
                "order.created",
                ticket(json!([{"quantity": 1, "station_id": "fry"}])),
                3_000,
            ),
            event("o2", "order.cancelled", json!({}), 4_000),
        ];
        let local = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .naive_utc()
        };
        let facts = ticket_facts(&events, local);
        let summary: Vec<(&str, Option<i64>, u32, i64)> = facts
            .iter()
            .map(|fact| {
                (
                    fact.station_id.as_str(),
                    fact.bumped_ms,
                    fact.units,
                    fact.due_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("fry", None, 2, 900_000),
                ("grill", Some(1_000_000), 2, 900_000)
            ]
        );
    }

    #[test]
    fn offsets_give_the_wall_clock_of_each_hour() {
        // UTC+1 until 3 600 000, then UTC+2.
        let offsets = Offsets(vec![(0, 3_600_000), (3_600_000, 7_200_000)]);
        assert_eq!(offsets.local(1_800_000).to_string(), "1970-01-01 01:30:00");
        assert_eq!(offsets.local(5_400_000).to_string(), "1970-01-01 03:30:00");
        assert_eq!(query_escape("Europe/London é"), "Europe%2FLondon%20%C3%A9");
    }
}
