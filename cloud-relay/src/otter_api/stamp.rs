//! Stamps new calls with their change number (`store::stamp_new`) as soon as they are made:
//! the triggers insert them with change 0 in the box's own transaction, which must not take the
//! change lock (see the migration). Runs whether or not the Otter client is on, so the boxes
//! see their calls `pending` (or refused) even while the relay does not call Otter.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store;

/// How often new rows are looked for when no NOTIFY came.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// `wake` is notified on every `NOTIFY otter_calls` (`dispatch::listen`).
pub async fn run(pool: PgPool, wake: Arc<Notify>, token: CancellationToken) {
    while !token.is_cancelled() {
        if let Err(error) = store::stamp_new(&pool).await {
            tracing::warn!(%error, "cannot stamp new otter calls");
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = token.cancelled() => {}
        }
    }
}
