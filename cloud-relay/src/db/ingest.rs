//! Group commit for webhooks: requests hand their event to a writer task and wait; each writer
//! commits whatever is queued (up to `ingest_batch_max`) in one transaction and only then
//! answers. Events of one store always go to the same writer, so per-store order is kept and
//! writers never contend for a store's sequence row.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::{
    model::{Incoming, Outcome},
    write::{WriteError, write_batch},
};
use crate::metrics::Metrics;

/// Why an event could not be stored; the webhook is answered non-2xx so Otter retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("storing the event failed: {0}")]
    Failed(String),
    #[error("timed out waiting for the database")]
    Timeout,
    #[error("the relay is shutting down")]
    ShuttingDown,
}

struct Job {
    incoming: Incoming,
    reply: oneshot::Sender<Result<Outcome, IngestError>>,
}

/// Handle to the writer tasks. Dropping every clone lets the writers finish and exit.
#[derive(Clone)]
pub struct Ingest {
    writers: Arc<Vec<mpsc::Sender<Job>>>,
    timeout: Duration,
}

impl Ingest {
    /// Starts `writers` writer tasks on `tracker`. `stored` is notified after each commit that
    /// added outbox rows.
    pub fn start(
        pool: sqlx::PgPool,
        writers: usize,
        batch_max: usize,
        timeout: Duration,
        stored: Arc<Notify>,
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
    ) -> Self {
        let senders = (0..writers)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(batch_max * 4);
                tracker.spawn(writer(
                    pool.clone(),
                    receiver,
                    batch_max,
                    timeout,
                    stored.clone(),
                    metrics.clone(),
                ));
                sender
            })
            .collect();
        Self {
            writers: Arc::new(senders),
            timeout,
        }
    }

    /// Stores one event; returns only after its transaction committed (or failed).
    pub async fn store(&self, incoming: Incoming) -> Result<Outcome, IngestError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        incoming.event.store_id.hash(&mut hasher);
        let writer = &self.writers[(hasher.finish() % self.writers.len() as u64) as usize];
        let (reply, answer) = oneshot::channel();
        let job = Job { incoming, reply };
        let result = tokio::time::timeout(self.timeout, async {
            writer
                .send(job)
                .await
                .map_err(|_| IngestError::ShuttingDown)?;
            answer.await.map_err(|_| IngestError::ShuttingDown)?
        })
        .await;
        result.unwrap_or(Err(IngestError::Timeout))
    }
}

async fn writer(
    pool: sqlx::PgPool,
    mut receiver: mpsc::Receiver<Job>,
    batch_max: usize,
    timeout: Duration,
    stored: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    let mut jobs = Vec::with_capacity(batch_max);
    while receiver.recv_many(&mut jobs, batch_max).await > 0 {
        // A request that gave up waiting needs no write: Otter will retry it.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let (incomings, replies): (Vec<Incoming>, Vec<_>) =
            jobs.drain(..).map(|job| (job.incoming, job.reply)).unzip();
        let started = std::time::Instant::now();
        // A hung connection must not stall this writer's stores forever: past the timeout the
        // transaction is dropped (rolled back) and the senders are answered 503 to retry.
        let results = tokio::time::timeout(timeout, commit_with_fallback(&pool, &incomings))
            .await
            .unwrap_or_else(|_| {
                tracing::error!(events = incomings.len(), ?timeout, "batch commit timed out");
                incomings
                    .iter()
                    .map(|_| Err(IngestError::Timeout))
                    .collect()
            });
        metrics.observe_batch(incomings.len(), started.elapsed());
        if results
            .iter()
            .any(|r| matches!(r, Ok(Outcome::Applied | Outcome::Stale | Outcome::Stored)))
        {
            stored.notify_one();
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // The requester may have timed out; the event is stored either way.
            let _ = reply.send(result);
        }
    }
}

/// Commits the batch in one transaction. If a statement fails for a reason other than the
/// database being away, each event is retried alone, so one bad event cannot sink the others.
async fn commit_with_fallback(
    pool: &sqlx::PgPool,
    batch: &[Incoming],
) -> Vec<Result<Outcome, IngestError>> {
    match commit(pool, batch).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if super::is_unavailable(&error) || batch.len() == 1 => {
            let error = classify(&error);
            batch.iter().map(|_| Err(error.clone())).collect()
        }
        Err(error) => {
            tracing::warn!(%error, events = batch.len(), "batch failed, storing its events one by one");
            let mut results = Vec::with_capacity(batch.len());
            for incoming in batch {
                let single = std::slice::from_ref(incoming);
                results.push(match commit(pool, single).await {
                    Ok(mut outcomes) => Ok(outcomes.remove(0)),
                    Err(error) => {
                        tracing::error!(%error, event_id = %incoming.event.event_id,
                            store_id = %incoming.event.store_id, "cannot store event");
                        Err(classify(&error))
                    }
                });
            }
            results
        }
    }
}

/// One transaction; retried when another relay instance raced us on an event id.
async fn commit(pool: &sqlx::PgPool, batch: &[Incoming]) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await?;
        match write_batch(&mut tx, batch).await {
            Ok(outcomes) => {
                tx.commit().await?;
                return Ok(outcomes);
            }
            Err(WriteError::Database(error)) => return Err(error),
            Err(WriteError::Raced) if attempt < 3 => {
                tracing::info!("an event of this batch was stored concurrently, retrying");
            }
            Err(WriteError::Raced) => {
                // Answered 503: Otter retries, and by then the other instance has committed.
                return Err(sqlx::Error::Protocol("event ids raced three times".into()));
            }
        }
    }
}

fn classify(error: &sqlx::Error) -> IngestError {
    if super::is_unavailable(error) {
        IngestError::Unavailable(error.to_string())
    } else {
        IngestError::Failed(error.to_string())
    }
}
