//! The dispatcher: the task that drains `otter.callbacks` to Otter. Woken by `NOTIFY
//! otter_calls` (the triggers send it in the box's transaction), by a finished call, or every
//! `POLL_INTERVAL` for retries and menu jobs. Safe with several relays: a call is taken with
//! `FOR UPDATE SKIP LOCKED` and marked `sent` (committed) before its request, and the budgets
//! are rows every relay updates (store.rs).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use chrono::Utc;
use kitchen_daemon::{
    backoff::{Spread, delay_for, jitter},
    sync::LockExt,
};
use reqwest::Method;
use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::{Notify, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    CallKind, JOB_ENDPOINT,
    client::{Answer, OtterClient, otter_message},
    metrics::{OtterMetrics, Outcome},
    render_path,
    store::{self, Claim, Claimed, Settle},
};
use crate::config::OtterApiConfig;

/// The channel the triggers notify.
pub const CHANNEL: &str = "otter_calls";
/// How often the dispatcher looks when nothing woke it.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often calls whose lease ran out are looked for.
const RECOVER_INTERVAL: Duration = Duration::from_secs(1);
/// Candidates read per look.
const CANDIDATES: i64 = 256;

/// (store, endpoint) → until when its budget is known to be used up.
type Blocked = Arc<Mutex<HashMap<(String, String), Instant>>>;

pub struct Dispatcher {
    pool: PgPool,
    client: Arc<OtterClient>,
    config: Arc<OtterApiConfig>,
    metrics: Arc<OtterMetrics>,
    token: CancellationToken,
    wake: Arc<Notify>,
    blocked: Blocked,
}

/// A menu job as Otter describes it (`MenuAsynchronousJob`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    job_reference: Option<JobReference>,
}

#[derive(Debug, Deserialize)]
struct JobReference {
    id: Option<String>,
    status: Option<String>,
}

impl Dispatcher {
    /// `wake` is notified on every `NOTIFY otter_calls` ([`listen`]).
    pub fn new(
        pool: PgPool,
        client: OtterClient,
        config: OtterApiConfig,
        metrics: Arc<OtterMetrics>,
        wake: Arc<Notify>,
        token: CancellationToken,
    ) -> Self {
        Self {
            pool,
            client: Arc::new(client),
            config: Arc::new(config),
            metrics,
            token,
            wake,
            blocked: Arc::default(),
        }
    }

    /// Runs until the token is cancelled, then waits for the requests in flight.
    pub async fn run(self) {
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight));
        let in_flight = TaskTracker::new();
        let mut recovered_at: Option<Instant> = None;
        tracing::info!("otter dispatcher running");
        while !self.token.is_cancelled() {
            if recovered_at.is_none_or(|at| at.elapsed() >= RECOVER_INTERVAL) {
                recovered_at = Some(Instant::now());
                match store::recover_expired(&self.pool).await {
                    Ok(0) => {}
                    Ok(count) => {
                        self.metrics.recovered.fetch_add(count, Ordering::Relaxed);
                        tracing::warn!(
                            count,
                            "otter calls found sent past their lease; sending them again"
                        );
                    }
                    Err(error) => tracing::warn!(%error, "cannot recover otter calls"),
                }
            }
            let blocked = self.blocked_now();
            let candidates = match store::candidates(&self.pool, CANDIDATES, &blocked).await {
                Ok(candidates) => candidates,
                Err(error) => {
                    tracing::warn!(%error, "cannot read otter calls");
                    Vec::new()
                }
            };
            for candidate in candidates {
                let Some(kind) = CallKind::from_name(&candidate.kind) else {
                    continue;
                };
                let (endpoint, limit) = if candidate.polling {
                    (JOB_ENDPOINT, self.config.limits.job_status)
                } else {
                    (kind.as_str(), kind.limit(&self.config.limits))
                };
                let key = (candidate.store_id.clone(), endpoint.to_owned());
                if self.is_blocked(&key) {
                    continue;
                }
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit,
                    () = self.token.cancelled() => break,
                };
                let Ok(permit) = permit else { break };
                let window = self.config.rate_window + self.config.rate_margin;
                let config = self.config.clone();
                let claim = store::claim(
                    &self.pool,
                    candidate.id,
                    endpoint,
                    limit,
                    window,
                    self.config.lease,
                    |call| path_of(&config, kind, call),
                )
                .await;
                match claim {
                    Ok(Claim::Taken(call)) => {
                        let worker = self.worker();
                        in_flight.spawn(async move {
                            worker.perform(kind, *call).await;
                            drop(permit);
                        });
                    }
                    Ok(Claim::NoBudget(wait)) => {
                        self.metrics.budget_waits.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(store_id = %key.0, endpoint, ?wait, "otter budget used up");
                        self.block(key, wait);
                    }
                    Ok(Claim::Gone) => {}
                    Err(error) => {
                        tracing::warn!(%error, call_id = candidate.id, "cannot take otter call")
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = self.token.cancelled() => {}
            }
        }
        in_flight.close();
        in_flight.wait().await;
        tracing::info!("otter dispatcher stopped");
    }

    /// The (store, endpoint) pairs whose budget is spent now (forgetting those free again).
    fn blocked_now(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut blocked = self.blocked.lock_or_recover();
        blocked.retain(|_, until| *until > now);
        blocked.keys().cloned().collect()
    }

    fn is_blocked(&self, key: &(String, String)) -> bool {
        let mut blocked = self.blocked.lock_or_recover();
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                blocked.remove(key);
                false
            }
            None => false,
        }
    }

    fn block(&self, key: (String, String), wait: Duration) {
        self.blocked
            .lock_or_recover()
            .insert(key, Instant::now() + wait);
    }

    fn worker(&self) -> Worker {
        Worker {
            pool: self.pool.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
            blocked: self.blocked.clone(),
        }
    }
}

/// The path to request for a claimed call: the call's own, or its menu job's status.
fn path_of(config: &OtterApiConfig, kind: CallKind, call: &Claimed) -> Result<String, String> {
    if let Some(job_id) = &call.job_id {
        return Ok(render_path(&config.paths.job, &[("jobId", job_id)]));
    }
    if !kind.is_order_call() {
        return Ok(kind.template(config).to_owned());
    }
    let order_id = call.order_id.as_deref().unwrap_or_default();
    let Some(source) = call.source.as_deref().filter(|source| !source.is_empty()) else {
        return Err(format!(
            "order {order_id} has no source (Otter's externalIdentifiers.source), which the \
             call's path needs"
        ));
    };
    Ok(render_path(
        kind.template(config),
        &[("source", source), ("orderId", order_id)],
    ))
}

/// What one request needs; runs as its own task.
struct Worker {
    pool: PgPool,
    client: Arc<OtterClient>,
    config: Arc<OtterApiConfig>,
    metrics: Arc<OtterMetrics>,
    wake: Arc<Notify>,
    blocked: Blocked,
}

impl Worker {
    async fn perform(self, kind: CallKind, call: Claimed) {
        let polling = call.job_id.is_some();
        let method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::POST);
        let body = if polling { None } else { call.body.as_ref() };
        let answer = self
            .client
            .call(method, &call.path, &call.store_id, body)
            .await;
        let (settle, outcome) = self.decide(kind, &call, answer);
        if let Some(outcome) = outcome {
            self.metrics.outcome(kind, outcome);
        }
        match store::settle(&self.pool, call.id, call.attempts, &settle).await {
            Ok(Some(created_at)) => {
                if settle.state == "accepted" {
                    let age = (Utc::now() - created_at).to_std().unwrap_or_default();
                    self.metrics.latency.observe(age);
                }
                if settle.state == "failed" {
                    tracing::warn!(call_id = call.id, kind = kind.as_str(), store_id = %call.store_id,
                        order_id = call.order_id.as_deref().unwrap_or(""),
                        reason = settle.reason.as_deref().unwrap_or(""), "otter call failed");
                }
            }
            Ok(None) => tracing::warn!(call_id = call.id, "otter call changed while it was sent"),
            // The lease runs out and the call goes again: at least once.
            Err(error) => {
                tracing::warn!(%error, call_id = call.id, "cannot record an otter answer")
            }
        }
        self.wake.notify_one();
    }

    /// The call's next state from Otter's answer.
    fn decide(&self, kind: CallKind, call: &Claimed, answer: Answer) -> (Settle, Option<Outcome>) {
        let config = &self.config;
        let polling = call.job_id.is_some();
        let age = (Utc::now() - call.created_at).to_std().unwrap_or_default();
        let settle = |state, status: Option<u16>, answer: Option<String>| Settle {
            state,
            status_code: status.map(i32::from),
            answer,
            reason: None,
            detail: String::new(),
            job_id: None,
            next_attempt_in: None,
        };
        match answer {
            Answer::Success { status, body } => {
                let job = (!kind.is_order_call())
                    .then(|| serde_json::from_str::<Job>(&body).ok())
                    .flatten()
                    .and_then(|job| job.job_reference);
                let job_status = job.as_ref().and_then(|job| job.status.clone());
                let job_id = job.and_then(|job| job.id).or(call.job_id.clone());
                match (job_id, job_status.as_deref()) {
                    (Some(job_id), Some("FAILED")) => {
                        let reason = format!("Otter's menu job {job_id} FAILED");
                        let mut done = settle("failed", Some(status), Some(body));
                        done.detail = reason.clone();
                        done.reason = Some(reason);
                        done.job_id = Some(job_id);
                        (done, Some(Outcome::Failed))
                    }
                    (Some(job_id), Some(other)) if other != "SUCCESS" => {
                        if age > config.job_timeout {
                            let reason = format!(
                                "Otter's menu job {job_id} still {other} after {} s",
                                config.job_timeout.as_secs()
                            );
                            let mut done = settle("failed", Some(status), Some(body));
                            done.detail = reason.clone();
                            done.reason = Some(reason);
                            return (done, Some(Outcome::Failed));
                        }
                        let mut waiting = settle("sent", Some(status), Some(body));
                        waiting.detail = "Otter is applying it".into();
                        waiting.job_id = Some(job_id);
                        waiting.next_attempt_in = Some(config.job_poll_interval);
                        (waiting, None)
                    }
                    (job_id, _) => {
                        let mut done = settle("accepted", Some(status), Some(body));
                        done.detail = kind.accepted_detail().into();
                        done.job_id = job_id;
                        (done, Some(Outcome::Accepted))
                    }
                }
            }
            Answer::Rejected { status, body } => {
                let what = if polling { "its menu job" } else { "the call" };
                let message = otter_message(&body);
                let mut failed = settle("failed", Some(status), Some(body));
                failed.detail = format!("Otter answered {status}: {message}");
                failed.reason = Some(format!("Otter answered {status} to {what}: {message}"));
                (failed, Some(Outcome::Failed))
            }
            Answer::RateLimited { retry_after, body } => {
                let wait = retry_after.unwrap_or_else(|| self.backoff(call.attempts));
                // Otter's budget for this (store, endpoint) is spent: hold its other calls too.
                let endpoint = if polling { JOB_ENDPOINT } else { kind.as_str() };
                self.blocked.lock_or_recover().insert(
                    (call.store_id.clone(), endpoint.to_owned()),
                    Instant::now() + wait,
                );
                let mut retry = self.retry(
                    polling,
                    Some(429),
                    Some(body),
                    "Otter answered 429 (rate limited)".into(),
                    wait,
                );
                retry.detail = "waiting: Otter asked to slow down".into();
                (retry, Some(Outcome::RateLimited))
            }
            Answer::Transient {
                status,
                reason,
                body,
            } => {
                if age > config.give_up_after {
                    let reason = format!(
                        "gave up after {} attempts over {} s; last: {reason}",
                        call.attempts,
                        age.as_secs()
                    );
                    let mut failed = settle("failed", status, body);
                    failed.detail = format!("not sent: Otter unreachable ({reason})");
                    failed.reason = Some(reason);
                    return (failed, Some(Outcome::Failed));
                }
                let wait = self.backoff(call.attempts);
                (
                    self.retry(polling, status, body, reason, wait),
                    Some(Outcome::Retried),
                )
            }
        }
    }

    /// Back to pending (or, for a menu job, to its next look) after `wait`.
    fn retry(
        &self,
        polling: bool,
        status: Option<u16>,
        body: Option<String>,
        reason: String,
        wait: Duration,
    ) -> Settle {
        Settle {
            state: if polling { "sent" } else { "pending" },
            status_code: status.map(i32::from),
            answer: body,
            detail: format!("retrying: {reason}"),
            reason: Some(reason),
            job_id: None,
            next_attempt_in: Some(wait),
        }
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let failures = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0);
        jitter(
            delay_for(self.config.retry_initial, self.config.retry_max, failures),
            Spread::UP_TO_BASE,
        )
    }
}

/// Notifies each of `wakes` on every `NOTIFY otter_calls` (and once after each (re)connect, for
/// what arrived meanwhile); reconnects after a second on error. One connection for the
/// dispatcher and the stamper.
pub async fn listen(pool: PgPool, wakes: Vec<Arc<Notify>>, token: CancellationToken) {
    let wake_all = || wakes.iter().for_each(|wake| wake.notify_one());
    while !token.is_cancelled() {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            wake_all();
            loop {
                listener.recv().await?;
                wake_all();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = listening => {
                if let Err(error) = result {
                    tracing::debug!(%error, "otter_calls listener lost; polling meanwhile");
                }
            }
            () = token.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = token.cancelled() => return,
        }
    }
}
