//! What the fleet channel counts (`relay_fleet_*`): messages by topic and outcome, the
//! subscriber's link and its reconnects, database failures that made it drop the link, commands
//! published and failed, and the commit time of a batch of messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kitchen_daemon::metrics::Exposition;

use crate::metrics::Histogram;

/// Topics, in the order of `FleetMetrics::messages`.
pub const TOPICS: [&str; 4] = ["presence", "telemetry", "replies", "other"];
/// Outcomes, in the order of `FleetMetrics::messages`' inner arrays.
pub const OUTCOMES: [&str; 5] = ["written", "stale", "unknown", "malformed", "rejected"];

#[derive(Debug, Default)]
pub struct FleetMetrics {
    messages: [[AtomicU64; OUTCOMES.len()]; TOPICS.len()],
    /// The subscriber is connected and subscribed.
    pub connected: AtomicBool,
    /// Another relay holds the subscriber lock.
    pub standby: AtomicBool,
    pub connects: AtomicU64,
    /// Times PostgreSQL failed under a batch and the subscriber dropped its link to be sent the
    /// unacknowledged messages again.
    pub database_failures: AtomicU64,
    /// Commands published (PUBACK) and failed (refused, timed out, broker away).
    pub commands_published: AtomicU64,
    pub commands_failed: AtomicU64,
    /// Committing one batch of messages.
    pub commit_latency: Histogram,
}

impl FleetMetrics {
    /// Counts one message of `topic` (an index into `TOPICS`) with `outcome` (into `OUTCOMES`).
    pub fn message(&self, topic: &str, outcome: &str) {
        let topic = TOPICS.iter().position(|t| *t == topic).unwrap_or(3);
        let outcome = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(4);
        self.messages[topic][outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for (`topic`, `outcome`), for tests and the benchmark.
    pub fn count(&self, topic: &str, outcome: &str) -> u64 {
        match (
            TOPICS.iter().position(|t| *t == topic),
            OUTCOMES.iter().position(|o| *o == outcome),
        ) {
            (Some(topic), Some(outcome)) => self.messages[topic][outcome].load(Ordering::Relaxed),
            _ => 0,
        }
    }

    pub fn render(&self, text: &mut Exposition) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        const MESSAGES: &str = "relay_fleet_messages_total";
        const MESSAGES_HELP: &str =
            "MQTT messages taken from the fleet topics, by topic and outcome (all acknowledged).";
        for (topic, outcomes) in TOPICS.iter().zip(&self.messages) {
            for (outcome, count) in OUTCOMES.iter().zip(outcomes) {
                text.counter(
                    MESSAGES,
                    MESSAGES_HELP,
                    &[("topic", topic), ("outcome", outcome)],
                    load(count),
                );
            }
        }
        text.gauge(
            "relay_fleet_connected",
            "1 when this relay's fleet subscriber is connected and subscribed.",
            &[],
            u64::from(self.connected.load(Ordering::Relaxed)),
        );
        text.gauge(
            "relay_fleet_standby",
            "1 when another relay holds the fleet subscriber lock.",
            &[],
            u64::from(self.standby.load(Ordering::Relaxed)),
        );
        text.counter(
            "relay_fleet_connects_total",
            "Connections of the fleet subscriber to the broker.",
            &[],
            load(&self.connects),
        );
        text.counter(
            "relay_fleet_database_failures_total",
            "Batches PostgreSQL failed; the subscriber dropped its link to be sent them again.",
            &[],
            load(&self.database_failures),
        );
        const COMMANDS: &str = "relay_fleet_commands_total";
        const COMMANDS_HELP: &str = "Commands sent to boxes, by outcome of the publish.";
        text.counter(
            COMMANDS,
            COMMANDS_HELP,
            &[("outcome", "published")],
            load(&self.commands_published),
        );
        text.counter(
            COMMANDS,
            COMMANDS_HELP,
            &[("outcome", "failed")],
            load(&self.commands_failed),
        );
        self.commit_latency.render(
            text,
            "relay_fleet_commit_seconds",
            "Time to commit one batch of fleet messages in PostgreSQL.",
        );
    }
}
