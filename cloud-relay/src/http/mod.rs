//! HTTP on two listeners. The public one (`listen`) serves what Otter needs — `POST
//! /webhooks/otter`, `/ping`, `/healthz` — and what a new kitchen box needs (`POST /enrol`), behind the per-address limit on rejected requests;
//! the admin one (`admin_listen`, loopback by default) serves `/readyz`, `/metrics`,
//! `/healthz` and the Otter calls (`/otter/calls`, `/otter/unconfirmed`) and the fleet page (`/fleet`, `/api/fleet`,
//! operators only). Both run in `kitchen_daemon::serve` (timeouts, connection cap).

mod admin;
mod enrol;
mod limit;
mod webhook;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use limit::{Admission, LogSample, RejectionLimiter, RejectionLimits};
pub use webhook::WebhookError;

use crate::{db::Ingest, metrics::Metrics, otter::WebhookVerifier};

/// Largest webhook body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the base64 HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-hmac-sha256";

/// Shared by every public request.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Ingest,
    /// `None` only with `--insecure-skip-signature`.
    pub verifier: Option<WebhookVerifier>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RejectionLimiter>,
    pub in_flight: InFlight,
    /// `POST /enrol`.
    pub enroller: Arc<crate::kitchens::enrol::Enroller>,
}

/// Shared by every admin request: what readiness and metrics read. It holds no `Ingest`
/// sender, so the writers can finish once the public listener is gone.
#[derive(Clone)]
pub struct AdminState {
    pub pool: sqlx::PgPool,
    /// The alarm's settings, for `/otter/unconfirmed`.
    pub otter_api: Arc<crate::config::OtterApiConfig>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RejectionLimiter>,
    pub in_flight: InFlight,
}

/// The bound on webhooks handled at once (`max_inflight_webhooks`).
#[derive(Clone, Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A place for one more webhook, or `None` when all are taken (never waits).
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Webhooks being handled now.
    pub fn count(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }
}

/// The public listener's routes.
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/otter", post(webhook::otter_webhook))
        .route("/enrol", post(enrol::enrol))
        .route("/ping", get(|| async { "pong" }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost, so a limited client is answered before its body is read, and unknown
        // paths (404) count as rejections too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit::limit_rejections,
        ))
        .with_state(state)
}

/// The admin listener's routes.
pub fn admin_router(state: AdminState, fleet: crate::fleet::page::FleetState) -> Router {
    Router::new()
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/otter/calls", get(admin::otter_calls))
        .route("/otter/unconfirmed", get(admin::otter_unconfirmed))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
        .merge(crate::reports::router(fleet.clone()))
        .merge(crate::fleet::page::router(fleet))
}
