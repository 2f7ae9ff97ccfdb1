//! `/readyz` and `/api/status`: how the box and its links are (store, feed, reference data,
//! sequence gaps, scanners, sync, the fleet channel). The status document itself is built by
//! `status::Live`, which the fleet's `diagnostics` command sends too.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kitchen_daemon::clock::now_ms;
use serde_json::{Value, json};

use super::{AppState, internal};
use crate::{
    status::StoreFacts,
    store::{Gap, Store, StoreError},
};

pub(super) async fn gaps_json(state: &AppState) -> Result<Vec<Gap>, StoreError> {
    state.readers.with(Store::sequence_gaps).await
}

/// What the status document needs from the store: the outbox backlog and the sequence gaps.
pub(super) async fn store_facts(state: &AppState) -> Result<StoreFacts, StoreError> {
    let pushed = state.live.sync.pushed();
    state
        .readers
        .with(move |store| {
            let (backlog, oldest) = store.sync_backlog(pushed)?;
            Ok(StoreFacts {
                backlog,
                oldest_unsynced_ms: oldest,
                gaps: json!(store.sequence_gaps()?),
            })
        })
        .await
}

/// Ready when the store answers, the kitchen feed is connected, the reference data was
/// accepted and, on a new card, the kitchen's open orders were recovered (or PostgreSQL could
/// not be reached to recover them: then `recovery` says so); lists sequence gaps and the scanners (a scanner that is not connected does not
/// make the agent unready: the LAN works without it). The fleet channel (MQTT) plays no part:
/// head office being unreachable must not take a kitchen out of service.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let live = &state.live;
    let gaps = match gaps_json(&state).await {
        Ok(gaps) => gaps,
        Err(error) => {
            tracing::error!(%error, "store does not answer");
            let body = json!({"ready": false, "store": "down", "feed": live.feed_state()});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let sync = match sync_json(&state).await {
        Ok(sync) => sync,
        Err(error) => return internal(error),
    };
    let feed = live.feed_state();
    // A new card is not ready while it recovers the kitchen's open orders (it serves the LAN
    // meanwhile, and takes new orders); with PostgreSQL unreachable it is, and says so.
    let pending = live
        .sync
        .recovery_pending
        .load(std::sync::atomic::Ordering::Relaxed);
    let ready =
        feed == "connected" && live.reference.usable() && !live.sync.recovery_blocks_ready();
    let mut body = json!({
        "ready": ready,
        "store": "up",
        "feed": feed,
        "reference": live.reference_text(),
        "sequence_gaps": gaps,
        "scanners": live.scanners.snapshot(),
        "sync": sync,
    });
    if pending {
        body["recovery"] = json!(if live.sync.recovery_blocks_ready() {
            "new card: recovering the kitchen's open orders from postgresql"
        } else {
            "new card: the kitchen's open orders are not recovered yet (postgresql unreachable; retrying)"
        });
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// What the displays show in their status bar: who this box is and how its links are.
pub(super) async fn status(State(state): State<AppState>) -> Response {
    match store_facts(&state).await {
        Ok(facts) => Json(state.live.status_json(&facts, now_ms())).into_response(),
        Err(error) => internal(error),
    }
}

/// The sync as `/readyz` and `/api/status` show it.
pub(super) async fn sync_json(state: &AppState) -> Result<Value, StoreError> {
    let pushed = state.live.sync.pushed();
    let (backlog, oldest) = state
        .readers
        .with(move |store| store.sync_backlog(pushed))
        .await?;
    Ok(state.live.sync_json(backlog, oldest, now_ms()))
}
