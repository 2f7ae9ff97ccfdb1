//! HTTP: the Otter webhook endpoint, health, readiness and metrics.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use serde_json::json;
use tracing::Instrument;

use crate::{
    db::{self, Incoming, Ingest, IngestError, Outcome},
    metrics::Metrics,
    otter::{ParseError, SignatureError, WebhookEvent, WebhookSigner},
};

/// Largest webhook body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the base64 HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-hmac-sha256";

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub ingest: Ingest,
    /// `None` only with `--insecure-skip-signature`.
    pub signer: Option<WebhookSigner>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/otter", post(otter_webhook))
        .route("/ping", get(|| async { "pong" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Everything a webhook can be answered with besides 200. Client errors say what was wrong;
/// server errors are logged in detail and answered generically.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Body(String, StatusCode),
    #[error("invalid signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("unsupported content type {0:?}; send application/json")]
    ContentType(String),
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Body(_, status) => *status,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Parse(_) => StatusCode::BAD_REQUEST,
            Self::Ingest(IngestError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Ingest(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `outcome` label this answer is counted under.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Body(_, StatusCode::PAYLOAD_TOO_LARGE) => "too_large",
            Self::Body(..) => "bad_body",
            Self::Signature(_) => "unauthorized",
            Self::ContentType(_) => "unsupported_media_type",
            Self::Parse(_) => "invalid",
            Self::Ingest(IngestError::Failed(_)) => "failed",
            Self::Ingest(_) => "unavailable",
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Ingest(IngestError::Failed(_)) => "internal error; retry later".to_owned(),
            Self::Ingest(_) => "temporarily unable to store the event; retry later".to_owned(),
            other => other.to_string(),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

async fn otter_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    match handle_webhook(&state, &headers, body).await {
        Ok((event_type, outcome)) => {
            state.metrics.webhook(&event_type, outcome.as_str());
            state.metrics.webhook_latency.observe(started.elapsed());
            StatusCode::OK.into_response()
        }
        Err((event_type, error)) => {
            let event_type = event_type.as_deref().unwrap_or("unknown");
            state.metrics.webhook(event_type, error.outcome());
            if error.status().is_server_error() {
                tracing::error!(%error, event_type, "webhook not stored");
            } else {
                tracing::warn!(%error, status = error.status().as_u16(), "webhook rejected");
            }
            error.into_response()
        }
    }
}

type Rejection = (Option<String>, WebhookError);

async fn handle_webhook(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, Outcome), Rejection> {
    let reject = |error: WebhookError| (None, error);
    let body = body.map_err(|rejection| {
        reject(WebhookError::Body(
            rejection.body_text(),
            rejection.status(),
        ))
    })?;
    match &state.signer {
        Some(signer) => signer
            .verify(&body, headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()))
            .map_err(|error| reject(error.into()))?,
        None => {
            tracing::warn!("INSECURE: webhook signature not checked (--insecure-skip-signature)")
        }
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = String::from_utf8_lossy(content_type.as_bytes()).to_ascii_lowercase();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(reject(WebhookError::ContentType(content_type)));
        }
    }
    let received_at = Utc::now();
    let event = WebhookEvent::parse(&body, received_at).map_err(|error| reject(error.into()))?;
    let raw = String::from_utf8(body.to_vec())
        .map_err(|_| reject(ParseError::Json("body is not UTF-8".into()).into()))?;
    let event_type = event.otter_event_type.clone();
    let span = tracing::info_span!("webhook", event_id = %event.event_id,
        store_id = %event.store_id, order_id = event.kind.order_id().unwrap_or(""));
    let outcome = state
        .ingest
        .store(Incoming {
            event,
            raw,
            received_at,
        })
        .instrument(span.clone())
        .await
        .map_err(|error| (Some(event_type.clone()), error.into()))?;
    span.in_scope(|| tracing::debug!(outcome = outcome.as_str(), "webhook stored"));
    Ok((event_type, outcome))
}

/// Ready when PostgreSQL answers and the publisher is connected to RabbitMQ.
async fn readyz(State(state): State<AppState>) -> Response {
    let database = match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    };
    let broker = if state.metrics.broker_connected.load(Ordering::Relaxed) {
        "up"
    } else if state.metrics.publisher_standby.load(Ordering::Relaxed) {
        // Another relay publishes; this one is ready to ingest.
        "standby"
    } else {
        "down"
    };
    let ready = database.is_ok() && broker != "down";
    let body = json!({
        "ready": ready,
        "database": match &database { Ok(()) => json!("up"), Err(e) => json!({"down": e}) },
        "broker": broker,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let outbox = match db::outbox::depth(&state.pool).await {
        Ok(depth) => Some(depth),
        Err(error) => {
            tracing::debug!(%error, "outbox depth unavailable for /metrics");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, kitchen_daemon::metrics::CONTENT_TYPE)],
        state.metrics.render(outbox),
    )
        .into_response()
}
