//! In-process counters and histograms, rendered as Prometheus text on `/metrics`.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use kitchen_daemon::{
    metrics::{Buckets, Exposition, MetricType},
    serve::ServeStats,
    sync::LockExt,
};

use crate::{
    otter::{SecretUsed, SignatureError},
    otter_api::metrics::{CallGauges, OtterMetrics},
};

/// Distinct event-type labels kept before the rest are counted as `other` (the type comes
/// from the sender, so its cardinality is bounded here).
const MAX_EVENT_TYPE_LABELS: usize = 64;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, text: &mut Exposition, name: &str, help: &str) {
        let cumulative_counts = self.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        text.histogram(
            name,
            help,
            &[],
            &Buckets {
                bounds: &BUCKETS,
                cumulative_counts: &cumulative_counts,
                sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                count: self.count.load(Ordering::Relaxed),
            },
        );
    }
}

/// Everything the relay counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// event type → outcome → count
    webhooks: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    pub webhook_latency: Histogram,
    pub commit_latency: Histogram,
    batches: AtomicU64,
    batched_events: AtomicU64,
    pub publish_latency: Histogram,
    pub published: AtomicU64,
    pub unroutable: AtomicU64,
    pub nacked: AtomicU64,
    pub broker_connected: AtomicBool,
    /// Another relay holds the publisher lock; this one only ingests.
    pub publisher_standby: AtomicBool,
    pub broker_connects: AtomicU64,
    /// Valid signatures by the secret they were made with: current, previous.
    signatures: [AtomicU64; 2],
    /// Refused signatures: missing, malformed, mismatch.
    signature_failures: [AtomicU64; 3],
    /// Requests answered 429 because their address was over its rejection limit.
    rate_limited: AtomicU64,
    /// The public listener's connections.
    pub public_server: Arc<ServeStats>,
    /// The admin listener's connections.
    pub admin_server: Arc<ServeStats>,
    /// The Otter API calls (`relay_otter_*`).
    pub otter: Arc<OtterMetrics>,
    /// The fleet channel (`relay_fleet_*`).
    pub fleet: Arc<crate::fleet::FleetMetrics>,
}

/// What `/metrics` reads at the time it is asked rather than counts.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (unpublished rows, age of the oldest in seconds) when the database could be asked.
    pub outbox: Option<(i64, Option<f64>)>,
    pub webhooks_in_flight: usize,
    /// Client addresses whose rejections are remembered.
    pub rejecting_clients: usize,
    /// The Otter calls held, when the database could be asked.
    pub otter: Option<CallGauges>,
}

/// In the order of `Metrics::signatures`.
const SECRETS: [SecretUsed; 2] = [SecretUsed::Current, SecretUsed::Previous];
/// In the order of `Metrics::signature_failures`.
const SIGNATURE_FAILURES: [SignatureError; 3] = [
    SignatureError::Missing,
    SignatureError::Malformed,
    SignatureError::Mismatch,
];

impl Metrics {
    /// Counts one webhook answered with `outcome`.
    pub fn webhook(&self, event_type: &str, outcome: &'static str) {
        let mut webhooks = self.webhooks.lock_or_recover();
        let label = if webhooks.contains_key(event_type) || webhooks.len() < MAX_EVENT_TYPE_LABELS {
            event_type
        } else {
            "other"
        };
        if let Some(outcomes) = webhooks.get_mut(label) {
            *outcomes.entry(outcome).or_default() += 1;
        } else {
            webhooks.insert(label.to_owned(), BTreeMap::from([(outcome, 1)]));
        }
    }

    /// Counts a valid signature made with `secret`.
    pub fn signature_matched(&self, secret: SecretUsed) {
        let index = match secret {
            SecretUsed::Current => 0,
            SecretUsed::Previous => 1,
        };
        self.signatures[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused signature.
    pub fn signature_failed(&self, failure: &SignatureError) {
        let index = match failure {
            SignatureError::Missing => 0,
            SignatureError::Malformed => 1,
            SignatureError::Mismatch => 2,
        };
        self.signature_failures[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered 429.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_batch(&self, events: usize, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.commit_latency.observe(took);
    }

    /// Prometheus text format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut text = Exposition::new();
        const WEBHOOKS: &str = "relay_webhooks_total";
        const WEBHOOKS_HELP: &str = "Webhooks answered, by Otter event type and outcome.";
        text.family(WEBHOOKS, MetricType::Counter, WEBHOOKS_HELP);
        let webhooks = self.webhooks.lock_or_recover();
        for (event_type, outcomes) in webhooks.iter() {
            for (outcome, count) in outcomes {
                text.counter(
                    WEBHOOKS,
                    WEBHOOKS_HELP,
                    &[("event_type", event_type), ("outcome", outcome)],
                    *count,
                );
            }
        }
        drop(webhooks);
        self.webhook_latency.render(
            &mut text,
            "relay_webhook_duration_seconds",
            "Time from request to answer for webhooks that reached the database.",
        );
        self.commit_latency.render(
            &mut text,
            "relay_ingest_commit_seconds",
            "Time to commit one batch of webhooks in PostgreSQL.",
        );
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        text.counter(
            "relay_ingest_batches_total",
            "PostgreSQL transactions that stored webhooks.",
            &[],
            load(&self.batches),
        )
        .counter(
            "relay_ingest_batched_events_total",
            "Webhooks stored through those transactions.",
            &[],
            load(&self.batched_events),
        );
        self.publish_latency.render(
            &mut text,
            "relay_publish_latency_seconds",
            "Time from storing an event to the broker confirming it.",
        );
        text.counter(
            "relay_published_total",
            "Outbox rows published and confirmed.",
            &[],
            load(&self.published),
        )
        .counter(
            "relay_publish_unroutable_total",
            "Kitchen publishes returned unroutable (no queue bound for the store); retried later.",
            &[],
            load(&self.unroutable),
        )
        .counter(
            "relay_publish_nacked_total",
            "Publishes the broker refused (nack); retried later.",
            &[],
            load(&self.nacked),
        )
        .counter(
            "relay_broker_connects_total",
            "Successful connections to RabbitMQ.",
            &[],
            load(&self.broker_connects),
        )
        .gauge(
            "relay_broker_connected",
            "1 while the publisher is connected to RabbitMQ.",
            &[],
            self.broker_connected.load(Ordering::Relaxed),
        )
        .gauge(
            "relay_publisher_standby",
            "1 while another relay holds the publisher lock and this one only ingests.",
            &[],
            self.publisher_standby.load(Ordering::Relaxed),
        );
        self.render_doors(&mut text, gauges);
        self.otter.render(&mut text, gauges.otter.as_ref());
        self.fleet.render(&mut text);
        if let Some((depth, oldest)) = gauges.outbox {
            text.gauge(
                "relay_outbox_depth",
                "Events stored but not yet published.",
                &[],
                depth,
            )
            .gauge(
                "relay_outbox_oldest_unpublished_seconds",
                "Age of the oldest unpublished event (0 when none).",
                &[],
                oldest.unwrap_or(0.0),
            );
        }
        text.finish()
    }

    /// The public endpoint's defences: signatures, load shedding, rejection limits,
    /// connections.
    fn render_doors(&self, text: &mut Exposition, gauges: &Gauges) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        const SIGNATURES: &str = "relay_webhook_signatures_total";
        const SIGNATURES_HELP: &str = "Valid webhook signatures, by the secret that matched \
             (previous: OTTER_WEBHOOK_SECRET_PREVIOUS, still in use while this grows).";
        for (secret, count) in SECRETS.iter().zip(&self.signatures) {
            text.counter(
                SIGNATURES,
                SIGNATURES_HELP,
                &[("secret", secret.as_str())],
                load(count),
            );
        }
        const FAILURES: &str = "relay_webhook_signature_failures_total";
        const FAILURES_HELP: &str = "Webhooks refused for their signature, by reason.";
        for (failure, count) in SIGNATURE_FAILURES.iter().zip(&self.signature_failures) {
            text.counter(
                FAILURES,
                FAILURES_HELP,
                &[("reason", failure.reason())],
                load(count),
            );
        }
        text.gauge(
            "relay_webhooks_in_flight",
            "Webhooks being checked and stored now (at most max_inflight_webhooks).",
            &[],
            gauges.webhooks_in_flight as u64,
        )
        .counter(
            "relay_rate_limited_total",
            "Requests answered 429 unread because their address was over its rejection limit.",
            &[],
            load(&self.rate_limited),
        )
        .gauge(
            "relay_rejecting_clients",
            "Client addresses whose rejected requests are remembered (at most \
             rejected_max_clients).",
            &[],
            gauges.rejecting_clients as u64,
        );
        let listeners = [
            ("public", &self.public_server),
            ("admin", &self.admin_server),
        ];
        // Each family's samples stay together in the text whatever the order they come in.
        for (listener, stats) in listeners {
            let labels = [("listener", listener)];
            text.gauge(
                "relay_http_connections_open",
                "HTTP connections open, by listener.",
                &labels,
                load(&stats.open),
            )
            .counter(
                "relay_http_connections_total",
                "HTTP connections accepted, by listener.",
                &labels,
                load(&stats.accepted),
            )
            .counter(
                "relay_http_request_timeouts_total",
                "Requests answered 408 because no answer was ready within request_timeout.",
                &labels,
                load(&stats.timed_out),
            )
            .counter(
                "relay_http_header_timeouts_total",
                "Connections closed because no request head arrived within header_timeout \
                 (slow clients, idle kept-alive connections).",
                &labels,
                load(&stats.header_timeouts),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.webhook("orders.new_order", "applied");
        metrics.webhook("orders.new_order", "applied");
        metrics.webhook("ping.ping", "stored");
        metrics.publish_latency.observe(Duration::from_millis(3));
        let text = metrics.render(&Gauges {
            outbox: Some((2, Some(1.5))),
            ..Gauges::default()
        });
        for line in [
            "relay_webhooks_total{event_type=\"orders.new_order\",outcome=\"applied\"} 2",
            "relay_webhooks_total{event_type=\"ping.ping\",outcome=\"stored\"} 1",
            "relay_publish_latency_seconds_bucket{le=\"0.0025\"} 0",
            "relay_publish_latency_seconds_bucket{le=\"0.005\"} 1",
            "relay_publish_latency_seconds_count 1",
            "relay_outbox_depth 2",
            "relay_outbox_oldest_unpublished_seconds 1.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn families_are_described_before_samples_and_labels_escaped() {
        let metrics = Metrics::default();
        let text = metrics.render(&Gauges::default());
        assert!(
            text.starts_with(
                "# HELP relay_webhooks_total Webhooks answered, by Otter event type and outcome.\n\
                 # TYPE relay_webhooks_total counter\n\
                 # HELP relay_webhook_duration_seconds "
            ),
            "{text}"
        );
        metrics.webhook("we\"ird\\type", "stored");
        let text = metrics.render(&Gauges::default());
        assert_eq!(
            text.lines().nth(2),
            Some(r#"relay_webhooks_total{event_type="we\"ird\\type",outcome="stored"} 1"#)
        );
    }

    #[test]
    fn signatures_rejections_and_connections() {
        let metrics = Metrics::default();
        metrics.signature_matched(SecretUsed::Current);
        metrics.signature_matched(SecretUsed::Current);
        metrics.signature_failed(&SignatureError::Mismatch);
        metrics.signature_failed(&SignatureError::Missing);
        metrics.signature_failed(&SignatureError::Mismatch);
        metrics.rate_limited();
        metrics.public_server.open.store(3, Ordering::Relaxed);
        metrics.public_server.accepted.store(7, Ordering::Relaxed);
        metrics.admin_server.timed_out.store(1, Ordering::Relaxed);
        let text = metrics.render(&Gauges {
            outbox: None,
            webhooks_in_flight: 4,
            rejecting_clients: 2,
            otter: None,
        });
        let family = |name: &str| -> Vec<&str> {
            text.lines().filter(|line| line.starts_with(name)).collect()
        };
        assert_eq!(
            family("relay_webhook_signatures_total"),
            [
                "relay_webhook_signatures_total{secret=\"current\"} 2",
                "relay_webhook_signatures_total{secret=\"previous\"} 0",
            ]
        );
        assert_eq!(
            family("relay_webhook_signature_failures_total"),
            [
                "relay_webhook_signature_failures_total{reason=\"missing\"} 1",
                "relay_webhook_signature_failures_total{reason=\"malformed\"} 0",
                "relay_webhook_signature_failures_total{reason=\"mismatch\"} 2",
            ]
        );
        assert_eq!(
            family("relay_webhooks_in_flight"),
            ["relay_webhooks_in_flight 4"]
        );
        assert_eq!(
            family("relay_rate_limited_total"),
            ["relay_rate_limited_total 1"]
        );
        assert_eq!(
            family("relay_rejecting_clients"),
            ["relay_rejecting_clients 2"]
        );
        assert_eq!(
            family("relay_http_"),
            [
                "relay_http_connections_open{listener=\"public\"} 3",
                "relay_http_connections_open{listener=\"admin\"} 0",
                "relay_http_connections_total{listener=\"public\"} 7",
                "relay_http_connections_total{listener=\"admin\"} 0",
                "relay_http_request_timeouts_total{listener=\"public\"} 0",
                "relay_http_request_timeouts_total{listener=\"admin\"} 1",
                "relay_http_header_timeouts_total{listener=\"public\"} 0",
                "relay_http_header_timeouts_total{listener=\"admin\"} 0",
            ]
        );
    }

    #[test]
    fn event_type_labels_are_bounded() {
        let metrics = Metrics::default();
        for n in 0..(MAX_EVENT_TYPE_LABELS + 10) {
            metrics.webhook(&format!("spam.{n}"), "stored");
        }
        let text = metrics.render(&Gauges::default());
        let lines = text
            .lines()
            .filter(|l| l.starts_with("relay_webhooks_total{"))
            .count();
        assert_eq!(lines, MAX_EVENT_TYPE_LABELS + 1);
        assert!(text.contains("relay_webhooks_total{event_type=\"other\",outcome=\"stored\"} 10"));
    }
}
