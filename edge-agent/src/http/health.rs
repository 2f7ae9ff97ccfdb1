//! `/readyz` and `/api/status`: how the box and its links are (store, feed, reference data,
//! sequence gaps, scanners, sync).

use std::sync::atomic::Ordering;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kitchen_daemon::{clock::now_ms, sync::LockExt};
use serde_json::{Value, json};

use super::{AppState, internal};
use crate::store::{Gap, Store, StoreError};

pub(super) fn feed_state(state: &AppState) -> &'static str {
    if !state.provisioned {
        "not provisioned"
    } else if state.feed.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    }
}

pub(super) async fn gaps_json(state: &AppState) -> Result<Vec<Gap>, StoreError> {
    state.readers.with(Store::sequence_gaps).await
}

/// Ready when the store answers, the kitchen feed is connected and the reference data was
/// accepted; lists sequence gaps and the scanners (a scanner that is not connected does not
/// make the agent unready: the LAN works without it).
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let gaps = match gaps_json(&state).await {
        Ok(gaps) => gaps,
        Err(error) => {
            tracing::error!(%error, "store does not answer");
            let body = json!({"ready": false, "store": "down", "feed": feed_state(&state)});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let sync = match sync_json(&state).await {
        Ok(sync) => sync,
        Err(error) => return internal(error),
    };
    let feed = feed_state(&state);
    let ready = feed == "connected" && state.reference.usable();
    let body = json!({
        "ready": ready,
        "store": "up",
        "feed": feed,
        "reference": reference_text(&state),
        "sequence_gaps": gaps,
        "scanners": state.scanners.snapshot(),
        "sync": sync,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// What the displays show in their status bar: who this box is and how its links are.
pub(super) async fn status(State(state): State<AppState>) -> Response {
    let sync = match sync_json(&state).await {
        Ok(sync) => sync,
        Err(error) => return internal(error),
    };
    match gaps_json(&state).await {
        Ok(gaps) => Json(json!({
            "sync": sync,
            "kitchen_id": state.kitchen_id,
            "provisioned": state.provisioned,
            "provision_error": state.provision_error,
            "feed": feed_state(&state),
            "reference": reference_text(&state),
            "sequence_gaps": gaps,
            "scanners": state.scanners.snapshot(),
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response(),
        Err(error) => internal(error),
    }
}

/// Where the reference data in use came from; while PostgreSQL (its source, once a sync is set
/// up) is unreachable, says the copy in use is kept.
pub(super) fn reference_text(state: &AppState) -> String {
    let text = state.reference.describe();
    if state.sync.configured.load(Ordering::Relaxed)
        && !state.sync.connected.load(Ordering::Relaxed)
    {
        format!("{text}; postgresql unreachable: keeping this copy")
    } else {
        text
    }
}

/// Whether unsynced records are older than the alarm threshold (only when a sync is set up:
/// without one, `state` says `not configured`).
pub(super) fn sync_alarm(state: &AppState, oldest: Option<i64>) -> bool {
    state.sync.configured.load(Ordering::Relaxed)
        && oldest.is_some_and(|at| now_ms() - at > state.sync_alarm_ms)
}

/// The sync as `/readyz` and `/api/status` show it.
pub(super) async fn sync_json(state: &AppState) -> Result<Value, StoreError> {
    let (backlog, oldest) = state.readers.with(Store::outbox_backlog).await?;
    let sync = &state.sync;
    let link = if !sync.configured.load(Ordering::Relaxed) {
        "not configured"
    } else if sync.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    let last_error = sync.last_error.lock_or_recover().clone();
    Ok(json!({
        "state": link,
        "backlog": backlog,
        "oldest_unsynced_ms": oldest,
        "alarm": sync_alarm(state, oldest),
        "last_error": last_error,
        "pushed": sync.pushed.load(Ordering::Relaxed),
        "reconciled": sync.reconciled.load(Ordering::Relaxed),
        "reference_version": sync.reference_version.load(Ordering::Relaxed),
    }))
}
