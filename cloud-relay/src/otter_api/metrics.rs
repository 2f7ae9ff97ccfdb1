//! What the Otter calls count: outcomes by kind, 429s, token requests, budget waits, calls
//! recovered after a crash, the unconfirmed-order gauge, and the time from an intent reaching
//! PostgreSQL to Otter taking the call. Rendered into the relay's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use kitchen_daemon::metrics::Exposition;

use super::{CALL_KINDS, CallKind};
use crate::metrics::Histogram;

/// The outcomes of one attempt, in the order of `OtterMetrics::outcomes`' inner arrays.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Otter took it (2xx; for 86, its job succeeded).
    Accepted,
    /// Parked: a 4xx, a failed job, given up, or refused on arrival.
    Failed,
    /// A 5xx, network error or timeout: sent again later.
    Retried,
    /// A 429: sent again later.
    RateLimited,
}

const OUTCOMES: [&str; 4] = ["accepted", "failed", "retried", "rate_limited"];

#[derive(Debug, Default)]
pub struct OtterMetrics {
    outcomes: [[AtomicU64; 4]; CALL_KINDS.len()],
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Token requests: succeeded, failed.
    pub token_fetches: [AtomicU64; 2],
    /// Times a call waited because its (store, endpoint) budget was used up.
    pub budget_waits: AtomicU64,
    /// Calls found `sent` past their lease (a relay died mid-request), sent again.
    pub recovered: AtomicU64,
    /// Otter orders past `confirm_alarm_after` with no confirm call (set by the alarm).
    pub unconfirmed: AtomicU64,
    /// An intent reaching PostgreSQL → Otter taking the call.
    pub latency: Histogram,
}

/// Read from PostgreSQL when `/metrics` is asked.
#[derive(Debug, Default)]
pub struct CallGauges {
    /// `(kind, state, count)`.
    pub by_kind_state: Vec<(String, String, i64)>,
    /// Age of the oldest pending call, seconds.
    pub oldest_pending: Option<f64>,
}

impl OtterMetrics {
    pub fn outcome(&self, kind: CallKind, outcome: Outcome) {
        let kind_index = CALL_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        self.outcomes[kind_index][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, text: &mut Exposition, gauges: Option<&CallGauges>) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        const CALLS: &str = "relay_otter_calls_total";
        const CALLS_HELP: &str = "Otter call attempts by kind and outcome (accepted, failed, \
             retried: 5xx or network, rate_limited: 429).";
        for (kind, counts) in CALL_KINDS.iter().zip(&self.outcomes) {
            for (outcome, count) in OUTCOMES.iter().zip(counts) {
                text.counter(
                    CALLS,
                    CALLS_HELP,
                    &[("kind", kind.as_str()), ("outcome", outcome)],
                    load(count),
                );
            }
        }
        text.counter(
            "relay_otter_rate_limited_total",
            "Otter answers 429.",
            &[],
            load(&self.rate_limited),
        );
        for (outcome, count) in ["ok", "error"].iter().zip(&self.token_fetches) {
            text.counter(
                "relay_otter_token_fetches_total",
                "OAuth2 token requests to Otter, by outcome.",
                &[("outcome", outcome)],
                load(count),
            );
        }
        text.counter(
            "relay_otter_budget_waits_total",
            "Times a call waited for its (store, endpoint) rate budget.",
            &[],
            load(&self.budget_waits),
        )
        .counter(
            "relay_otter_calls_recovered_total",
            "Calls found sent past their lease (a relay died mid-request) and sent again.",
            &[],
            load(&self.recovered),
        )
        .gauge(
            "relay_otter_unconfirmed_orders",
            "Otter orders past confirm_alarm_after, not cancelled or finished, with no confirm \
             call (GET /otter/unconfirmed lists them).",
            &[],
            load(&self.unconfirmed),
        );
        self.latency.render(
            text,
            "relay_otter_call_latency_seconds",
            "Time from an intent reaching PostgreSQL to Otter accepting its call.",
        );
        if let Some(gauges) = gauges {
            for (kind, state, count) in &gauges.by_kind_state {
                text.gauge(
                    "relay_otter_calls",
                    "Otter calls held in otter.callbacks, by kind and state.",
                    &[("kind", kind), ("state", state)],
                    *count,
                );
            }
            let backlog: i64 = gauges
                .by_kind_state
                .iter()
                .filter(|(_, state, _)| state == "pending" || state == "sent")
                .map(|(_, _, count)| count)
                .sum();
            text.gauge(
                "relay_otter_backlog",
                "Otter calls pending or sent (not yet answered).",
                &[],
                backlog,
            )
            .gauge(
                "relay_otter_oldest_pending_seconds",
                "Age of the oldest pending Otter call (0 when none).",
                &[],
                gauges.oldest_pending.unwrap_or(0.0),
            );
        }
    }
}
