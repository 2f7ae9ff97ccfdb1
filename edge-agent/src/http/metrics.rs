//! `/metrics`: the agent's counters and gauges in the Prometheus text format.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{status::Scanners, writer::now_ms};

use super::{AppState, health::sync_alarm, internal};

/// Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let read = state.readers.with(|store| {
        Ok((
            store.counts()?,
            store.sequence_gaps()?.len(),
            store.last_event_seq()?,
            store.outbox_backlog()?,
        ))
    });
    let (counts, gaps, last_seq, (backlog, oldest)) = match read.await {
        Ok(read) => read,
        Err(error) => return internal(error),
    };
    let feed = &state.feed;
    let mut body = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
    metric(
        "edge_agent_feed_connected",
        "gauge",
        "1 while the kitchen feed is consuming from RabbitMQ.",
        u8::from(feed.connected.load(Ordering::Relaxed)).to_string(),
    );
    metric(
        "edge_agent_events_applied_total",
        "counter",
        "Order events applied to the store.",
        load(&feed.applied),
    );
    metric(
        "edge_agent_events_duplicate_total",
        "counter",
        "Order events received again and ignored.",
        load(&feed.duplicates),
    );
    metric(
        "edge_agent_events_rejected_total",
        "counter",
        "Undecodable or invalid messages dead-lettered.",
        load(&feed.rejected),
    );
    metric(
        "edge_agent_sequence_gaps_total",
        "counter",
        "Sequence gaps detected since start.",
        load(&feed.gaps),
    );
    metric(
        "edge_agent_sequence_gaps_open",
        "gauge",
        "Runs of store sequence numbers still missing.",
        gaps.to_string(),
    );
    metric(
        "edge_agent_open_orders",
        "gauge",
        "Open orders.",
        counts.0.to_string(),
    );
    metric(
        "edge_agent_batch_sessions_open",
        "gauge",
        "Batch sessions started and not completed.",
        counts.1.to_string(),
    );
    metric(
        "edge_agent_event_log_last_seq",
        "gauge",
        "Newest event-log sequence (the SSE id).",
        last_seq.to_string(),
    );
    let writes = &state.writer.stats;
    metric(
        "edge_agent_write_jobs_total",
        "counter",
        "Write transactions run by the store writer.",
        load(&writes.jobs),
    );
    metric(
        "edge_agent_write_seconds_total",
        "counter",
        "Time the store writer spent in write transactions.",
        format!(
            "{:.6}",
            writes.total_us.load(Ordering::Relaxed) as f64 / 1e6
        ),
    );
    metric(
        "edge_agent_write_seconds_max",
        "gauge",
        "Longest write transaction since start.",
        format!("{:.6}", writes.max_us.load(Ordering::Relaxed) as f64 / 1e6),
    );
    metric(
        "edge_agent_sse_clients",
        "gauge",
        "Open event streams.",
        state.streams.clients.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "edge_agent_sse_lagging_disconnects_total",
        "counter",
        "Event streams ended because the client fell too far behind.",
        load(&state.streams.lagging_disconnects),
    );
    let sync = &state.sync;
    metric(
        "edge_agent_sync_connected",
        "gauge",
        "1 while the last sync round with PostgreSQL succeeded.",
        u8::from(sync.connected.load(Ordering::Relaxed)).to_string(),
    );
    metric(
        "edge_agent_sync_backlog",
        "gauge",
        "Records in the outbox not yet in PostgreSQL.",
        backlog.to_string(),
    );
    metric(
        "edge_agent_sync_oldest_seconds",
        "gauge",
        "Age of the oldest record not yet in PostgreSQL (0 when none).",
        oldest
            .map_or(0, |at| (now_ms() - at).max(0) / 1000)
            .to_string(),
    );
    metric(
        "edge_agent_sync_alarm",
        "gauge",
        "1 while the oldest unsynced record is older than sync_alarm_minutes.",
        u8::from(sync_alarm(&state, oldest)).to_string(),
    );
    metric(
        "edge_agent_sync_pushed_total",
        "counter",
        "Records pushed to PostgreSQL (a record pushed again after a crash counts again).",
        load(&sync.pushed),
    );
    metric(
        "edge_agent_reconciled_total",
        "counter",
        "Order events the queue had missed, applied from PostgreSQL.",
        load(&sync.reconciled),
    );
    scanner_metrics(&mut body, &state.scanners);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// One series per scanner (names are plain, `[A-Za-z0-9._-]`: no label escaping needed).
pub(super) fn scanner_metrics(body: &mut String, scanners: &Scanners) {
    let scanners = scanners.snapshot();
    let _ = writeln!(
        body,
        "# HELP edge_agent_scanner_connected 1 while the scanner's device is open.\n\
         # TYPE edge_agent_scanner_connected gauge"
    );
    for scanner in &scanners {
        let connected = u8::from(scanner.state == crate::status::Link::Connected);
        let _ = writeln!(
            body,
            "edge_agent_scanner_connected{{scanner=\"{}\"}} {connected}",
            scanner.name
        );
    }
    let _ = writeln!(
        body,
        "# HELP edge_agent_scanner_frames_total Frames read from the scanner, by what became of \
         them.\n# TYPE edge_agent_scanner_frames_total counter"
    );
    for scanner in &scanners {
        for (result, count) in [
            ("accepted", scanner.accepted),
            ("rejected", scanner.rejected),
            ("overlong", scanner.overlong),
            ("failed", scanner.failed),
        ] {
            let _ = writeln!(
                body,
                "edge_agent_scanner_frames_total{{scanner=\"{}\",result=\"{result}\"}} {count}",
                scanner.name
            );
        }
    }
}
