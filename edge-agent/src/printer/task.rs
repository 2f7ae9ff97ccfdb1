//! One task per printer: takes its oldest unprinted job from the queue, checks the printer's
//! status, sends the bytes, checks again, and only then has the job marked printed; a failure
//! is recorded with the time of the next try (backoff). Never in the writer's way: it reads
//! the queue through the read pool and reports through the writer like any adapter.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    config::PrinterConfig,
    receipt::{Fault, PrinterStatus},
    status::Printers,
    store::{PrintJob, Readers},
    writer::StoreWriter,
};

use super::link::{Link, LinkError};

/// The longest wait between tries of a job while the printer is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait while the printer reports a fault: paper goes back in within seconds.
const MAX_FAULT_BACKOFF: Duration = Duration::from_secs(5);
/// A link with nothing to print is closed after this long (a network printer serves one
/// connection at a time).
const IDLE_CLOSE: Duration = Duration::from_secs(10);
/// How often the queue is looked at without a wake-up.
const POLL: Duration = Duration::from_secs(1);

/// Why a job did not print.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{0}")]
    Fault(Fault, PrinterStatus),
}

pub struct PrinterTask {
    pub config: PrinterConfig,
    /// Its place in `printers`.
    pub index: usize,
    pub printers: Arc<Printers>,
    pub readers: Arc<Readers>,
    pub writer: StoreWriter,
    pub jobs: watch::Receiver<u64>,
    pub retry: Duration,
    pub timeout: Duration,
    pub token: CancellationToken,
}

impl PrinterTask {
    pub async fn run(mut self) {
        let mut link: Option<Link> = None;
        let mut idle = tokio::time::Instant::now();
        // A job printed whose mark the store refused: marked again, never printed again.
        let mut unrecorded: Option<i64> = None;
        let name = self.config.name.clone();
        while !self.token.is_cancelled() {
            let next = self.readers.with(|store| store.next_print_job(&name)).await;
            let job = match next {
                Ok((job, waiting)) => {
                    self.printers.update(self.index, |p| p.waiting = waiting);
                    job
                }
                Err(error) => {
                    tracing::error!(printer = %name, %error, "cannot read the print queue");
                    self.pause(self.retry).await;
                    continue;
                }
            };
            let Some(job) = job else {
                if link.is_some() && idle.elapsed() > IDLE_CLOSE {
                    link = None;
                }
                tokio::select! {
                    _ = self.token.cancelled() => break,
                    _ = self.jobs.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            };
            if unrecorded == Some(job.job_id) {
                if self.record(&job, Ok(())).await {
                    unrecorded = None;
                } else {
                    self.pause(self.retry).await;
                }
                continue;
            }
            let wait = job.next_try_ms - kitchen_daemon::clock::now_ms();
            if wait > 0 {
                // Jobs print in order: the oldest waits out its retry first.
                self.pause(Duration::from_millis(wait as u64)).await;
                continue;
            }
            let outcome = self.attempt(&mut link, &job).await;
            idle = tokio::time::Instant::now();
            let now_ms = kitchen_daemon::clock::now_ms();
            match outcome {
                Ok(status) => {
                    if self.printers.set_state(self.index, "ready", None, now_ms) {
                        tracing::info!(printer = %name, "printer ready");
                    }
                    self.printers.update(self.index, |p| {
                        p.printed += 1;
                        p.last_printed_ms = Some(now_ms);
                        p.paper_near_end = status.is_some_and(|s| s.paper_near_end);
                    });
                    if !self.record(&job, Ok(())).await {
                        unrecorded = Some(job.job_id);
                    }
                }
                Err(failure) => {
                    let (state, cap) = match &failure {
                        Failure::Fault(fault, status) => {
                            let near_end = status.paper_near_end;
                            self.printers
                                .update(self.index, |p| p.paper_near_end = near_end);
                            (fault.name(), MAX_FAULT_BACKOFF)
                        }
                        Failure::Link(error) => {
                            // Whatever broke, start the next try on a fresh link.
                            link = None;
                            (error.state(), MAX_BACKOFF)
                        }
                    };
                    let reason = failure.to_string();
                    if self
                        .printers
                        .set_state(self.index, state, Some(reason.clone()), now_ms)
                    {
                        tracing::warn!(printer = %name, job_id = job.job_id, %reason,
                            "printer cannot print: the job waits");
                    }
                    self.printers.update(self.index, |p| p.failed += 1);
                    let delay = backoff(self.retry, job.attempts, cap);
                    let next_try = now_ms + delay.as_millis() as i64;
                    self.record(&job, Err((reason, next_try))).await;
                }
            }
        }
    }

    /// One try: status, bytes, status. `Ok` carries the status read after the bytes (none
    /// when the printer is not asked).
    async fn attempt(
        &self,
        link: &mut Option<Link>,
        job: &PrintJob,
    ) -> Result<Option<PrinterStatus>, Failure> {
        let link = match link {
            Some(link) => link,
            None => link.insert(Link::open(&self.config.target, self.timeout).await?),
        };
        if self.config.status {
            let status = link.status().await?;
            if let Some(fault) = status.fault() {
                return Err(Failure::Fault(fault, status));
            }
        }
        link.send(&job.bytes).await?;
        if !self.config.status {
            return Ok(None);
        }
        // Read back after the ticket: a fault now (the paper ran out under it) means it may
        // be cut short, so it prints again, whole, once the printer is back.
        let status = link.status().await?;
        match status.fault() {
            Some(fault) => Err(Failure::Fault(fault, status)),
            None => Ok(Some(status)),
        }
    }

    /// Hands an attempt's outcome to the writer; whether it was recorded.
    async fn record(&self, job: &PrintJob, outcome: Result<(), (String, i64)>) -> bool {
        match self.writer.print_outcome(job.job_id, outcome).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(printer = %self.config.name, job_id = job.job_id, %error,
                    "cannot record a print job's outcome");
                false
            }
        }
    }

    async fn pause(&self, duration: Duration) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }
}

/// `retry` doubled per attempt already made, at most `cap`.
fn backoff(retry: Duration, attempts: u32, cap: Duration) -> Duration {
    retry
        .saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(cap)
        .max(retry.min(cap))
}
