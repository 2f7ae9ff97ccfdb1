//! Prep inventory over HTTP: the prep view and list (`/api/prep`), discarding stock, printable
//! prep labels (HTML with a GS1-128 barcode, ZPL, or PDF), and the prep display page.

use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::NaiveDate;
use kitchen_daemon::clock::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::{
    AppState, error,
    guard::{Caller, forbid},
    internal,
};
use crate::{device::Action, label, pdf, prep, scan, store::Store, writer::StockRejection};

/// Labels printed at most per request.
const MAX_COPIES: u32 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/prep", get(page))
        .route("/api/prep", get(prep_view))
        .route("/api/stock/{stock_id}/discard", post(discard))
        .route("/labels/prep", get(labels))
}

/// The prep display: on hand against PAR, the prep list, expired stock and rejected scans,
/// live over SSE; prints as the prep list.
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/prep.html"),
    )
        .into_response()
}

/// `GET /api/prep`: every stocked item's PAR (for the day part running now), what is on hand,
/// what to make, and the open stock; expired stock listed apart; and `clock_synchronised`
/// (`false`: today's date and the use-by checks cannot be trusted, the display says so).
async fn prep_view(State(state): State<AppState>) -> Response {
    let (today, minute) = prep::local_day(now_ms());
    match state.readers.with(Store::open_stock).await {
        Ok(open) => {
            let view = prep::view(&state.live.reference.get(), open, today, minute);
            let mut body = json!(view);
            body["clock_synchronised"] = json!(state.live.clock.synchronised());
            Json(body).into_response()
        }
        Err(error) => internal(error),
    }
}

/// `POST /api/stock/{stock_id}/discard` (a manager device): the stock is thrown away, recorded
/// under the device's name. `409` when it was already used or discarded.
async fn discard(
    State(state): State<AppState>,
    Extension(Caller(device)): Extension<Caller>,
    Path(stock_id): Path<String>,
) -> Response {
    if let Some(refused) = forbid(&device, Action::Discard, "discard stock") {
        return refused;
    }
    match state
        .writer
        .discard_stock(stock_id.clone(), device.name)
        .await
    {
        Ok(Ok(lot)) => Json(json!(lot)).into_response(),
        Ok(Err(rejection @ StockRejection::NoStock(_))) => error(StatusCode::NOT_FOUND, rejection),
        Ok(Err(rejection)) => error(StatusCode::CONFLICT, rejection),
        Err(error) => internal(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelQuery {
    item: String,
    quantity: Option<u32>,
    batch: Option<String>,
    prepared: Option<NaiveDate>,
    use_by: Option<NaiveDate>,
    copies: Option<u32>,
    format: Option<String>,
}

/// One label to print.
struct Label {
    batch_id: String,
    raw: String,
    human: String,
    values: Vec<u8>,
}

/// `GET /labels/prep?item=<id>[&quantity=1][&batch=][&prepared=YYYY-MM-DD][&use_by=]
/// [&copies=1][&format=html|zpl|pdf]`: prep labels to print, each with its own batch id
/// (`<batch>-<n>` when several). `use_by` defaults to prepared + the item's shelf life.
async fn labels(State(state): State<AppState>, Query(query): Query<LabelQuery>) -> Response {
    let reference = state.live.reference.get();
    let Some(item) = reference.item(&query.item) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown item {:?}", query.item),
        );
    };
    let copies = query.copies.unwrap_or(1);
    if !(1..=MAX_COPIES).contains(&copies) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("copies must be between 1 and {MAX_COPIES}"),
        );
    }
    let quantity = query.quantity.unwrap_or(1);
    if quantity == 0 {
        return error(StatusCode::BAD_REQUEST, "quantity must be at least 1");
    }
    let now = now_ms();
    let prepared = query.prepared.unwrap_or_else(|| prep::local_day(now).0);
    let shelf_life = chrono::Days::new(u64::from(item.shelf_life_days()));
    // Checked: a date near the end of chrono's range (`prepared=+262142-12-31`) must be a 400,
    // not a panic that takes the agent down.
    let use_by = match query.use_by {
        Some(use_by) => use_by,
        None => match prepared.checked_add_days(shelf_life) {
            Some(use_by) => use_by,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("prepared {prepared} is too far in the future"),
                );
            }
        },
    };
    // A label's dates are GS1 YYMMDD: a year outside 2000–2099 cannot be printed on it.
    let printable = |date: NaiveDate| (2000..=2099).contains(&chrono::Datelike::year(&date));
    if !printable(prepared) || !printable(use_by) {
        return error(
            StatusCode::BAD_REQUEST,
            "prepared and use_by must be between 2000-01-01 and 2099-12-31",
        );
    }
    let batch = query.batch.unwrap_or_else(|| prep::new_batch_id(now));
    let mut labels = Vec::new();
    for copy in 1..=copies {
        let batch_id = match copies {
            1 => batch.clone(),
            _ => format!("{batch}-{copy}"),
        };
        let label = scan::PrepLabel {
            item_id: &item.id,
            batch_id: &batch_id,
            prepared,
            use_by,
            quantity,
        };
        let made = label
            .element_string()
            .and_then(|raw| Ok((raw, label.human()?)));
        let (raw, human) = match made {
            Ok(made) => made,
            Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
        };
        let values = match label::gs1_128(&raw) {
            Ok(values) => values,
            Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
        };
        labels.push(Label {
            batch_id,
            raw,
            human,
            values,
        });
    }
    fn text_of<'a>(
        label: &'a Label,
        item: &'a kitchen_proto::reference::Item,
        quantity: u32,
        prepared: NaiveDate,
        use_by: NaiveDate,
    ) -> label::LabelText<'a> {
        label::LabelText {
            item_name: &item.name,
            quantity,
            unit: item.unit.as_deref(),
            batch_id: &label.batch_id,
            prepared,
            use_by,
            human: &label.human,
        }
    }
    let text = |label| text_of(label, item, quantity, prepared, use_by);
    match query.format.as_deref() {
        Some("zpl") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            labels
                .iter()
                .map(|l| label::zpl(&l.values, &text(l)))
                .collect::<String>(),
        )
            .into_response(),
        Some("pdf") => {
            let pages: Vec<_> = labels.iter().map(|l| (l.values.clone(), text(l))).collect();
            // The item id names the file; a header must not carry a quote or a line break.
            let file: String = item
                .id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"labels-{file}.pdf\""),
                    ),
                ],
                pdf::labels::render(&pages),
            )
                .into_response()
        }
        None | Some("html") => {
            let body: String = labels
                .iter()
                .map(|l| {
                    let t = text(l);
                    let quantity = match t.unit {
                        Some(unit) => format!("{quantity} × {}", escape(unit)),
                        None => quantity.to_string(),
                    };
                    format!(
                        "<section class=\"label\" data-code=\"{code}\"><h1>{name}</h1>\
                         <p class=\"dates\">Prepared {prepared} · <b>USE BY {use_by}</b></p>\
                         <p>Qty {quantity} · Batch {batch}</p>{svg}<p class=\"hri\">{human}</p>\
                         </section>",
                        code = escape(&l.raw.replace(scan::GS, "\\x1d")),
                        name = escape(t.item_name),
                        batch = escape(&l.batch_id),
                        svg = label::svg(&l.values, 0.3, 16.0),
                        human = escape(&l.human),
                    )
                })
                .collect();
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!(
                    "{LABEL_PAGE_HEAD}{body}</main><script src=\"/static/print.js\"></script></body></html>"
                ),
            )
                .into_response()
        }
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("format {other:?}: html, zpl or pdf"),
        ),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Labels print one per 4 × 2 inch page; on screen they stack with a print button.
const LABEL_PAGE_HEAD: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Prep labels</title>
<style>
@page { size: 4in 2in; margin: 0; }
body { font-family: system-ui, sans-serif; margin: 0; background: #ddd; }
.bar { padding: 12px; }
.bar button { font-size: 20px; padding: 8px 24px; }
main { display: flex; flex-direction: column; gap: 12px; align-items: center; padding-bottom: 24px; }
.label { box-sizing: border-box; width: 4in; height: 2in; padding: 0.08in 0.12in; background: #fff;
  overflow: hidden; page-break-after: always; break-after: page; }
.label h1 { font-size: 20px; margin: 0 0 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.label p { margin: 0 0 2px; font-size: 12px; }
.label .dates b { font-size: 14px; }
.label svg { display: block; margin-top: 3px; max-width: 100%; }
.label .hri { font-family: ui-monospace, monospace; font-size: 10px; }
@media print { body { background: #fff; } .bar { display: none; } main { display: block; padding: 0; } }
</style></head><body><div class="bar"><button id="print">Print</button></div><main>
"#;
