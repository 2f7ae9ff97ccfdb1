//! `POST /webhooks/otter`: the body's signature checked on its exact bytes, the event parsed
//! and handed to the ingest writers; answered only after its commit. `WebhookError` is every
//! other answer.

use std::time::Instant;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde_json::json;
use tracing::Instrument;

use super::{AppState, SIGNATURE_HEADER};
use crate::{
    db::{Incoming, IngestError, Outcome},
    otter::{ParseError, SignatureError, WebhookEvent},
};

/// Seconds a shed webhook is told to wait before it is sent again.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// What a rejected (4xx) answer was about, for the sampled log line the rejection layer writes.
#[derive(Debug, Clone)]
pub struct RejectionNote(pub String);

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
    #[error("too many webhooks in flight; retry later")]
    Overloaded,
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Body(_, status) => *status,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Parse(_) => StatusCode::BAD_REQUEST,
            Self::Ingest(IngestError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Ingest(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::Overloaded => "shed",
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
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if matches!(self, Self::Overloaded) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(SHED_RETRY_AFTER_SECS),
            );
        }
        if status.is_client_error() {
            response.extensions_mut().insert(RejectionNote(message));
        }
        response
    }
}

pub(super) async fn otter_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // Taken once the body is read (a slow sender holds a connection, not a place), held
    // through the signature check and the commit wait.
    let result = match state.in_flight.try_enter() {
        Some(_place) => handle_webhook(&state, &headers, body).await,
        None => Err((None, WebhookError::Overloaded)),
    };
    match result {
        Ok((event_type, outcome)) => {
            state.metrics.webhook(&event_type, outcome.as_str());
            state.metrics.webhook_latency.observe(started.elapsed());
            StatusCode::OK.into_response()
        }
        Err((event_type, error)) => {
            let event_type = event_type.as_deref().unwrap_or("unknown");
            state.metrics.webhook(event_type, error.outcome());
            match &error {
                WebhookError::Overloaded => {
                    // Counted (`outcome="shed"`); one line per shed webhook would add to the load.
                    tracing::debug!("webhook shed: max_inflight_webhooks reached");
                }
                WebhookError::Signature(failure) => state.metrics.signature_failed(failure),
                error if error.status().is_server_error() => {
                    tracing::error!(%error, event_type, "webhook not stored");
                }
                // Logged, sampled per client, by the rejection layer.
                _ => {}
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
    match &state.verifier {
        Some(verifier) => {
            let secret = verifier
                .verify(&body, headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()))
                .map_err(|error| reject(error.into()))?;
            state.metrics.signature_matched(secret);
        }
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
