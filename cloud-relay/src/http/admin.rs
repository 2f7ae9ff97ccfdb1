//! The admin listener's answers: readiness (up or down, the reasons only in the log) and the
//! Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::AdminState;
use crate::{db, metrics::Gauges};

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
    let gauges = Gauges {
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
