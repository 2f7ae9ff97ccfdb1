//! `/metrics`: the agent's counters and gauges in the Prometheus text format, rendered by the
//! renderer both services share (`kitchen_daemon::metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use kitchen_daemon::{
    clock::now_ms,
    metrics::{CONTENT_TYPE, Exposition, Fixed, MetricType},
};

use super::{AppState, internal};
use crate::status::{Link, MqttStats, Scanners};

/// Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let pushed = state.live.sync.pushed();
    let read = state.readers.with(move |store| {
        Ok((
            store.counts()?,
            store.sequence_gaps()?.len(),
            store.last_event_seq()?,
            store.sync_backlog(pushed)?,
        ))
    });
    let ((open_orders, open_sessions), gaps, last_seq, (backlog, oldest)) = match read.await {
        Ok(read) => read,
        Err(error) => return internal(error),
    };
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let seconds = |micros: u64| Fixed {
        value: micros as f64 / 1e6,
        decimals: 6,
    };
    let (feed, writes, sync) = (&state.live.feed, &state.writer.stats, &state.live.sync);
    let mut text = Exposition::new();
    text.gauge(
        "edge_agent_feed_connected",
        "1 while the kitchen feed is consuming from RabbitMQ.",
        &[],
        feed.connected.load(Ordering::Relaxed),
    )
    .counter(
        "edge_agent_events_applied_total",
        "Order events applied to the store.",
        &[],
        load(&feed.applied),
    )
    .counter(
        "edge_agent_events_duplicate_total",
        "Order events received again and ignored.",
        &[],
        load(&feed.duplicates),
    )
    .counter(
        "edge_agent_events_rejected_total",
        "Undecodable or invalid messages dead-lettered.",
        &[],
        load(&feed.rejected),
    )
    .counter(
        "edge_agent_sequence_gaps_total",
        "Sequence gaps detected since start.",
        &[],
        load(&feed.gaps),
    )
    .gauge(
        "edge_agent_sequence_gaps_open",
        "Runs of store sequence numbers still missing.",
        &[],
        gaps,
    )
    .gauge("edge_agent_open_orders", "Open orders.", &[], open_orders)
    .gauge(
        "edge_agent_batch_sessions_open",
        "Batch sessions started and not completed.",
        &[],
        open_sessions,
    )
    .gauge(
        "edge_agent_event_log_last_seq",
        "Newest event-log sequence (the SSE id).",
        &[],
        last_seq,
    )
    .counter(
        "edge_agent_write_jobs_total",
        "Write transactions run by the store writer.",
        &[],
        load(&writes.jobs),
    )
    .counter(
        "edge_agent_write_seconds_total",
        "Time the store writer spent in write transactions.",
        &[],
        seconds(load(&writes.total_us)),
    )
    .gauge(
        "edge_agent_write_seconds_max",
        "Longest write transaction since start.",
        &[],
        seconds(load(&writes.max_us)),
    )
    .gauge(
        "edge_agent_sse_clients",
        "Open event streams.",
        &[],
        state.live.streams.clients.load(Ordering::Relaxed),
    )
    .counter(
        "edge_agent_sse_lagging_disconnects_total",
        "Event streams ended because the client fell too far behind.",
        &[],
        load(&state.live.streams.lagging_disconnects),
    )
    .gauge(
        "edge_agent_sync_connected",
        "1 while the last sync round with PostgreSQL succeeded.",
        &[],
        sync.connected.load(Ordering::Relaxed),
    )
    .gauge(
        "edge_agent_sync_backlog",
        "Records in the outbox not yet in PostgreSQL.",
        &[],
        backlog,
    )
    .gauge(
        "edge_agent_sync_oldest_seconds",
        "Age of the oldest record not yet in PostgreSQL (0 when none).",
        &[],
        oldest.map_or(0, |at| (now_ms() - at).max(0) / 1000),
    )
    .gauge(
        "edge_agent_sync_alarm",
        "1 while the oldest unsynced record is older than sync_alarm_minutes.",
        &[],
        state.live.sync_alarm(oldest, now_ms()),
    )
    .counter(
        "edge_agent_sync_pushed_total",
        "Records pushed to PostgreSQL (a record pushed again after a crash counts again).",
        &[],
        load(&sync.pushed),
    )
    .counter(
        "edge_agent_reconciled_total",
        "Order events the queue had missed, applied from PostgreSQL.",
        &[],
        load(&sync.reconciled),
    );
    mqtt_metrics(&mut text, &state.live.mqtt);
    scanner_metrics(&mut text, &state.live.scanners);
    printer_metrics(&mut text, &state.live.printers);
    door_metrics(&mut text, &state);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text.finish()).into_response()
}

/// The fleet channel: the link and the commands head office sent.
fn mqtt_metrics(text: &mut Exposition, mqtt: &MqttStats) {
    const COMMANDS: &str = "edge_agent_mqtt_commands_total";
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    text.gauge(
        "edge_agent_mqtt_connected",
        "1 while the fleet channel (MQTT) is connected; 0 when down or not configured.",
        &[],
        mqtt.connected.load(Ordering::Relaxed),
    )
    .counter(
        "edge_agent_mqtt_connects_total",
        "Connections made to the MQTT broker (a reconnect counts again).",
        &[],
        load(&mqtt.connects),
    );
    text.family(
        COMMANDS,
        MetricType::Counter,
        "Fleet commands received, by outcome (repeated: a redelivery answered from memory; dropped: no id to answer to).",
    );
    for (result, counter) in [
        ("ok", &mqtt.commands_ok),
        ("failed", &mqtt.commands_failed),
        ("repeated", &mqtt.commands_repeated),
        ("dropped", &mqtt.commands_dropped),
    ] {
        text.counter(COMMANDS, "", &[("result", result)], load(counter));
    }
}

/// One series per scanner; the families are written even with no scanner configured.
fn scanner_metrics(text: &mut Exposition, scanners: &Scanners) {
    const CONNECTED: &str = "edge_agent_scanner_connected";
    const FRAMES: &str = "edge_agent_scanner_frames_total";
    let scanners = scanners.snapshot();
    text.family(
        CONNECTED,
        MetricType::Gauge,
        "1 while the scanner's device is open.",
    );
    for scanner in &scanners {
        let labels = [("scanner", scanner.name.as_str())];
        text.gauge(CONNECTED, "", &labels, scanner.state == Link::Connected);
    }
    text.family(
        FRAMES,
        MetricType::Counter,
        "Frames read from the scanner, by what became of them.",
    );
    for scanner in &scanners {
        for (result, count) in [
            ("accepted", scanner.accepted),
            ("rejected", scanner.rejected),
            ("overlong", scanner.overlong),
            ("failed", scanner.failed),
        ] {
            let labels = [("scanner", scanner.name.as_str()), ("result", result)];
            text.counter(FRAMES, "", &labels, count);
        }
    }
}

/// One series per ticket printer; the families are written even with none configured.
fn printer_metrics(text: &mut Exposition, printers: &crate::status::Printers) {
    const READY: &str = "edge_agent_printer_ready";
    const WAITING: &str = "edge_agent_printer_jobs_waiting";
    const ATTEMPTS: &str = "edge_agent_printer_attempts_total";
    let printers = printers.snapshot();
    text.family(
        READY,
        MetricType::Gauge,
        "1 while the printer's last ticket printed and its status read back fine.",
    );
    for printer in &printers {
        let labels = [("printer", printer.name.as_str())];
        text.gauge(READY, "", &labels, printer.state == "ready");
    }
    text.family(WAITING, MetricType::Gauge, "Tickets not printed yet.");
    for printer in &printers {
        let labels = [("printer", printer.name.as_str())];
        text.gauge(WAITING, "", &labels, printer.waiting);
    }
    text.family(
        ATTEMPTS,
        MetricType::Counter,
        "Tickets sent to the printer since the start, by outcome.",
    );
    for printer in &printers {
        for (result, count) in [("printed", printer.printed), ("failed", printer.failed)] {
            let labels = [("printer", printer.name.as_str()), ("result", result)];
            text.counter(ATTEMPTS, "", &labels, count);
        }
    }
}

/// The LAN doors: connections, streams refused at the caps, requests refused by reason.
fn door_metrics(text: &mut Exposition, state: &AppState) {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let (connections, refused) = (&state.connections, &state.access.refused);
    text.gauge(
        "edge_agent_http_connections_open",
        "LAN connections open now.",
        &[],
        load(&connections.open),
    )
    .counter(
        "edge_agent_http_connections_total",
        "LAN connections accepted.",
        &[],
        load(&connections.accepted),
    )
    .counter(
        "edge_agent_http_request_timeouts_total",
        "Requests answered 408: no answer within request_timeout_secs.",
        &[],
        load(&connections.timed_out),
    )
    .counter(
        "edge_agent_http_header_timeouts_total",
        "Connections closed: no request head within header_timeout_secs (slow or idle clients).",
        &[],
        load(&connections.header_timeouts),
    )
    .counter(
        "edge_agent_sse_refused_total",
        "Event streams refused at max_streams or max_streams_per_device.",
        &[],
        load(&state.live.streams.refused),
    );
    const REFUSED: &str = "edge_agent_http_refused_total";
    text.family(
        REFUSED,
        MetricType::Counter,
        "Requests refused before a handler, by reason.",
    );
    for (reason, counter) in [
        ("host", &refused.host),
        ("origin", &refused.origin),
        ("content_type", &refused.content_type),
        ("uri", &refused.uri),
        ("unpaired", &refused.unpaired),
        ("forbidden", &refused.forbidden),
        ("rate_limited", &refused.rate_limited),
        ("busy", &refused.busy),
    ] {
        text.counter(REFUSED, "", &[("reason", reason)], load(counter));
    }
}
