//! The admin listener's answers: readiness (up or down, the reasons only in the log), the
//! Prometheus metrics, and the Otter calls and unconfirmed orders for operators.

use std::sync::atomic::Ordering;

use axum::{
    Json,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::{db, metrics::Gauges, otter_api::store};

/// The `/readyz` body: states only, never an error text (that goes to the log).
#[derive(Debug, Serialize)]
struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// `up` or `down`.
    database: &'static str,
    /// `up`, `standby` (another relay publishes; this one is still ready) or `down`.
    broker: &'static str,
}

/// Ready when PostgreSQL answers and the publisher is connected to RabbitMQ (or stands by).
pub(super) async fn readyz(State(state): State<AdminState>) -> Response {
    let database = match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => "up",
        Err(error) => {
            tracing::warn!(%error, "not ready: PostgreSQL does not answer");
            "down"
        }
    };
    let broker = if state.metrics.broker_connected.load(Ordering::Relaxed) {
        "up"
    } else if state.metrics.publisher_standby.load(Ordering::Relaxed) {
        "standby"
    } else {
        "down"
    };
    let ready = database == "up" && broker != "down";
    let readiness = Readiness {
        status: if ready { "ready" } else { "not ready" },
        database,
        broker,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

pub(super) async fn metrics(State(state): State<AdminState>) -> Response {
    let outbox = match db::outbox::depth(&state.pool).await {
        Ok(depth) => Some(depth),
        Err(error) => {
            tracing::debug!(%error, "outbox depth unavailable for /metrics");
            None
        }
    };
    let otter = match store::gauges(&state.pool).await {
        Ok(gauges) => Some(gauges),
        Err(error) => {
            tracing::debug!(%error, "otter call gauges unavailable for /metrics");
            None
        }
    };
    let gauges = Gauges {
        otter,
        outbox,
        webhooks_in_flight: state.in_flight.count(),
        rejecting_clients: state.limiter.clients(),
    };
    (
        [(header::CONTENT_TYPE, kitchen_daemon::metrics::CONTENT_TYPE)],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// `GET /otter/calls?state=pending|sent|accepted|failed&limit=N` (newest first, 100 by default,
/// at most 1000).
#[derive(Debug, Deserialize)]
pub(super) struct CallsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

const STATES: [&str; 4] = ["pending", "sent", "accepted", "failed"];

pub(super) async fn otter_calls(
    State(state): State<AdminState>,
    Query(query): Query<CallsQuery>,
) -> Response {
    if let Some(wanted) = &query.state
        && !STATES.contains(&wanted.as_str())
    {
        let error = format!("state must be one of {}", STATES.join(", "));
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": error })),
        )
            .into_response();
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    match store::list_calls(&state.pool, query.state.as_deref(), limit).await {
        Ok(calls) => Json(calls).into_response(),
        Err(error) => unavailable(error),
    }
}

/// `GET /otter/unconfirmed`: the orders the alarm is raised for now, oldest first.
pub(super) async fn otter_unconfirmed(State(state): State<AdminState>) -> Response {
    let config = &state.otter_api;
    match store::unconfirmed(
        &state.pool,
        config.confirm_alarm_after,
        config.confirm_alarm_lookback,
    )
    .await
    {
        Ok(orders) => Json(orders).into_response(),
        Err(error) => unavailable(error),
    }
}

fn unavailable(error: sqlx::Error) -> Response {
    tracing::warn!(%error, "admin: cannot read otter calls");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": "database unavailable" })),
    )
        .into_response()
}
