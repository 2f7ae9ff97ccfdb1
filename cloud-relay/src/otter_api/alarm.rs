//! The unconfirmed-order alarm: an Otter order that is not cancelled or finished and has no
//! confirm call `confirm_alarm_after` after it arrived means no kitchen screen shows it (or no
//! one accepted it). Logged at ERROR once per order (`otter.unconfirmed_alarms` remembers it
//! across relays and restarts), counted in `relay_otter_unconfirmed_orders`, listed on the
//! admin listener (`GET /otter/unconfirmed`). Runs whether or not the Otter client is on.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{metrics::OtterMetrics, store};

/// Looks every `after / 4`, between 100 ms and 15 s.
pub async fn run(
    pool: PgPool,
    after: Duration,
    lookback: Duration,
    metrics: Arc<OtterMetrics>,
    token: CancellationToken,
) {
    let interval = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    while !token.is_cancelled() {
        match store::unconfirmed(&pool, after, lookback).await {
            Ok(orders) => {
                metrics
                    .unconfirmed
                    .store(orders.len() as u64, Ordering::Relaxed);
                for order in &orders {
                    match store::raise_alarm(&pool, order).await {
                        Ok(true) => tracing::error!(
                            order_id = %order.order_id,
                            store_id = %order.store_id,
                            friendly_id = order.friendly_id.as_deref().unwrap_or(""),
                            waiting_seconds = order.waiting_seconds.round() as u64,
                            "Otter order not confirmed by any kitchen: no box has shown it, or \
                             no one accepted it (GET /otter/unconfirmed)"
                        ),
                        Ok(false) => {}
                        Err(error) => tracing::warn!(%error, "cannot record an order alarm"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot look for unconfirmed orders"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = token.cancelled() => {}
        }
    }
}
