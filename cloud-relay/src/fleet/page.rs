//! The fleet page on the admin listener: `/fleet` (the list, or the sign-in form), `POST
//! /fleet/login`, `/fleet/events` (SSE), `/fleet/<kitchen>` (charts, diagnostics, commands),
//! `/api/fleet`, `/api/fleet/<kitchen>`, `POST /api/fleet/<kitchen>/commands/<name>` and the
//! page's own script and style. Only operators get in (the `fleet_operator` cookie or
//! `Authorization: Bearer`); every answer carries a CSP allowing only the relay's own files.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use kitchen_proto::report::render::escape;

use super::{COMMANDS, CommandError, Commander, events, operators, store};

/// The cookie holding the operator's token.
pub const COOKIE: &str = "fleet_operator";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const FLEET_JS: &str = include_str!("static/fleet.js");
const KITCHEN_JS: &str = include_str!("static/kitchen.js");
const FLEET_CSS: &str = include_str!("static/fleet.css");

/// What the fleet routes share.
#[derive(Clone)]
pub struct FleetState {
    pub pool: PgPool,
    /// `None` when the fleet channel is off (no commands).
    pub commander: Option<Commander>,
    pub changes: broadcast::Sender<String>,
    pub token: CancellationToken,
}

pub fn router(state: FleetState) -> Router {
    Router::new()
        .route("/fleet", get(list_page))
        .route("/fleet/login", post(login))
        .route("/fleet/logout", post(logout))
        .route("/fleet/events", get(events_stream))
        .route("/fleet/static/{file}", get(static_file))
        .route("/fleet/{kitchen}", get(kitchen_page))
        .route("/api/fleet", get(api_rows))
        .route("/api/fleet/{kitchen}", get(api_kitchen))
        .route("/api/fleet/{kitchen}/commands/{name}", post(api_command))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

pub(crate) async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The token a request carries: `Authorization: Bearer`, else the cookie.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The operator making the request, or the answer to give instead (401, or 503 when
/// PostgreSQL cannot say).
pub(crate) async fn operator(state: &FleetState, headers: &HeaderMap) -> Result<String, Response> {
    let Some(token) = presented_token(headers) else {
        return Err(unauthorized());
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        operators::authenticate(&state.pool, &token),
    )
    .await
    {
        Ok(Ok(Some(name))) => Ok(name),
        Ok(Ok(None)) => Err(unauthorized()),
        _ => Err(unavailable()),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "an operator token is required"})),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "database unavailable"})),
    )
        .into_response()
}

/// A write must come from this page (or a client that is not a browser): a foreign `Origin`
/// or a cross-site fetch is refused.
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same = ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
        });
        if !same {
            return Err(format!("cross-origin request from {origin:?} refused"));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && matches!(site.as_bytes(), b"cross-site" | b"same-site")
    {
        return Err("cross-site request refused".into());
    }
    Ok(())
}

fn forbidden(why: String) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({"error": why})),
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn sign_in(message: Option<&str>) -> Response {
    let message = message
        .map(|message| format!("<p class=\"error\" id=\"error\">{}</p>", escape(message)))
        .unwrap_or_default();
    html(
        StatusCode::UNAUTHORIZED,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Fleet — sign in</title></head><body>\
             <h1>Fleet</h1>{message}\
             <form method=\"post\" action=\"/fleet/login\" id=\"signin\">\
             <label>Operator token <input type=\"password\" name=\"token\" \
             autocomplete=\"current-password\" required></label> \
             <button type=\"submit\">Sign in</button></form>\
             <p>Tokens are made with <code>cloud-relay operator add --name NAME</code>.</p>\
             </body></html>"
        ),
    )
}

fn page(title: &str, body_attributes: &str, script: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/fleet/static/fleet.css\">\
         <script src=\"/fleet/static/{script}\" defer></script></head>\
         <body {body_attributes}>{content}</body></html>"
    )
}

async fn list_page(State(state): State<FleetState>, headers: HeaderMap) -> Response {
    match operator(&state, &headers).await {
        Ok(name) => html(
            StatusCode::OK,
            page(
                "Fleet",
                "",
                "fleet.js",
                &format!(
                    "<header><h1>Fleet</h1><span id=\"link\" class=\"link\">connecting…</span>\
                     <a href=\"/reports\">Reports</a><span class=\"who\">{}</span>\
                     <form method=\"post\" action=\"/fleet/logout\"><button>Sign out</button>\
                     </form></header>\
                     <table id=\"fleet\"><thead><tr>\
                     <th data-key=\"kitchen_id\">Kitchen</th><th data-key=\"presence\">State</th>\
                     <th data-key=\"feed\">Feed</th><th data-key=\"sync\">Sync</th>\
                     <th data-key=\"backlog\">Backlog</th><th data-key=\"late\">Late</th>\
                     <th data-key=\"version\">Version</th>\
                     <th data-key=\"reference_version\">Reference</th>\
                     <th data-key=\"clock_synced\">Clock</th>\
                     <th data-key=\"telemetry_at\">Telemetry</th>\
                     </tr></thead><tbody></tbody></table>",
                    escape(&name)
                ),
            ),
        ),
        Err(response) if response.status() == StatusCode::UNAUTHORIZED => sign_in(None),
        Err(response) => response,
    }
}

/// `token=<token>` (form-encoded; tokens are `op_` and hex, so no decoding beyond `+`/`%XX`).
fn form_token(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let value = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")?
        .1;
    let mut out = Vec::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .ok()
        .map(|token| token.trim().to_owned())
}

async fn login(State(state): State<FleetState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = same_origin(&headers) {
        return forbidden(why);
    }
    let Some(token) = form_token(&body) else {
        return sign_in(Some("Enter your operator token."));
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        operators::authenticate(&state.pool, &token),
    )
    .await
    {
        Ok(Ok(Some(name))) => {
            tracing::info!(operator = %name, "fleet page: operator signed in");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/fleet".to_owned()),
                    (
                        header::SET_COOKIE,
                        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
                    ),
                ],
            )
                .into_response()
        }
        Ok(Ok(None)) => sign_in(Some("That token is not an operator's.")),
        _ => unavailable(),
    }
}

async fn logout(headers: HeaderMap) -> Response {
    if let Err(why) = same_origin(&headers) {
        return forbidden(why);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/fleet".to_owned()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

async fn events_stream(State(state): State<FleetState>, headers: HeaderMap) -> Response {
    if let Err(response) = operator(&state, &headers).await {
        return response;
    }
    events::stream(state.pool.clone(), &state.changes, state.token.clone())
}

async fn static_file(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    if let Err(response) = operator(&state, &headers).await {
        return response;
    }
    let (kind, body) = match file.as_str() {
        "fleet.js" => ("text/javascript; charset=utf-8", FLEET_JS),
        "kitchen.js" => ("text/javascript; charset=utf-8", KITCHEN_JS),
        "fleet.css" => ("text/css; charset=utf-8", FLEET_CSS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn kitchen_page(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Path(kitchen): Path<String>,
) -> Response {
    if let Err(response) = operator(&state, &headers).await {
        return if response.status() == StatusCode::UNAUTHORIZED {
            sign_in(None)
        } else {
            response
        };
    }
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store::row(&state.pool, &kitchen),
    )
    .await
    {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return (StatusCode::NOT_FOUND, "no such kitchen").into_response(),
        _ => return unavailable(),
    }
    let kitchen = escape(&kitchen);
    let buttons: String = COMMANDS
        .iter()
        .map(|name| format!("<button class=\"command\" data-command=\"{name}\">{name}</button>"))
        .collect();
    let charts: String = [
        ("memory", "Agent memory (RSS)"),
        ("backlog", "Sync backlog"),
        ("late", "Late tickets"),
        ("disk", "Disk free"),
    ]
    .iter()
    .map(|(id, title)| {
        format!("<figure class=\"chart\"><figcaption>{title}</figcaption><div id=\"chart-{id}\"></div></figure>")
    })
    .collect();
    html(
        StatusCode::OK,
        page(
            &format!("Fleet — {kitchen}"),
            &format!("data-kitchen=\"{kitchen}\""),
            "kitchen.js",
            &format!(
                "<header><a href=\"/fleet\">Fleet</a><h1>{kitchen}</h1>\
                 <span id=\"state\" class=\"state\"></span></header>\
                 <section id=\"summary\"></section>\
                 <section class=\"charts\">{charts}</section>\
                 <section><h2>Commands</h2><div id=\"buttons\">{buttons}</div>\
                 <p id=\"command-result\"></p><table id=\"commands\"><thead><tr><th>Sent</th>\
                 <th>Command</th><th>By</th><th>Reply</th></tr></thead><tbody></tbody></table>\
                 </section>\
                 <section><h2>Last diagnostics</h2><pre id=\"diagnostics\">none yet</pre>\
                 </section>"
            ),
        ),
    )
}

async fn api_rows(State(state): State<FleetState>, headers: HeaderMap) -> Response {
    if let Err(response) = operator(&state, &headers).await {
        return response;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), store::rows(&state.pool)).await {
        Ok(Ok(rows)) => Json(rows).into_response(),
        _ => unavailable(),
    }
}

async fn api_kitchen(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Path(kitchen): Path<String>,
) -> Response {
    if let Err(response) = operator(&state, &headers).await {
        return response;
    }
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store::detail(&state.pool, &kitchen),
    )
    .await
    {
        Ok(Ok(Some(detail))) => Json(detail).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such kitchen"})),
        )
            .into_response(),
        _ => unavailable(),
    }
}

async fn api_command(
    State(state): State<FleetState>,
    headers: HeaderMap,
    Path((kitchen, name)): Path<(String, String)>,
) -> Response {
    let operator = match operator(&state, &headers).await {
        Ok(operator) => operator,
        Err(response) => return response,
    };
    if let Err(why) = same_origin(&headers) {
        return forbidden(why);
    }
    let Some(commander) = &state.commander else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": CommandError::Off.to_string()})),
        )
            .into_response();
    };
    match commander.send(&kitchen, &name, &operator).await {
        Ok(sent) => {
            tracing::info!(%kitchen, command = %name, %operator, id = %sent.id, "fleet: command sent");
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "id": sent.id.to_string(),
                    "expires_at": sent.expires_at.timestamp_millis(),
                })),
            )
                .into_response()
        }
        Err(error) => {
            let status = match &error {
                CommandError::UnknownCommand(_) | CommandError::UnfitKitchen(..) => {
                    StatusCode::BAD_REQUEST
                }
                CommandError::UnknownKitchen(_) => StatusCode::NOT_FOUND,
                CommandError::Off | CommandError::Database(_) | CommandError::Broker(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            (
                status,
                Json(serde_json::json!({"error": error.to_string()})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_tokens_decode() {
        assert_eq!(form_token(b"token=op_ab12").as_deref(), Some("op_ab12"));
        assert_eq!(form_token(b"x=1&token=op%5Fab+").as_deref(), Some("op_ab"));
        assert_eq!(form_token(b"x=1"), None);
        assert_eq!(form_token(b"token=%G1"), None);
        assert_eq!(form_token(b"token=%4"), Some("%4".into()));
    }

    #[test]
    fn tokens_come_from_bearer_or_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; fleet_operator=op_1"),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("op_1"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer op_2"),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("op_2"));
    }
}
