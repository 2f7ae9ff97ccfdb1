//! A tablet: one SSE client per agent that reads `/orders/events` and, whenever the stream
//! ends (the agent was killed, the link dropped), reconnects with `Last-Event-ID` as a browser
//! does. It checks as it reads: after a snapshot at id `n` the next event is `n + 1`, then
//! `n + 2`, ... — a gap or an id seen twice is a violation.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct Tablet {
    /// When each order's `order.created` reached this tablet (the first time).
    pub created: BTreeMap<String, Instant>,
    pub events: u64,
    pub snapshots: u64,
    pub reconnects: u64,
    /// Gaps and duplicates, as text, in the order seen.
    pub violations: Vec<String>,
    /// The grill scanner's scans as the agent answered them on the stream, by their code:
    /// accepted or not, and when, once per `scan.recorded` / `scan.rejected` event.
    pub scans: BTreeMap<String, Vec<(bool, Instant)>>,
    last_id: Option<i64>,
}

pub type SharedTablet = Arc<Mutex<Tablet>>;

pub fn lock(tablet: &SharedTablet) -> std::sync::MutexGuard<'_, Tablet> {
    tablet.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tablet {
    fn frame(&mut self, id: Option<i64>, event: &str, data: &str) {
        let Some(id) = id else { return };
        if event == "snapshot" {
            // A snapshot restates everything up to `id`: numbering continues from it.
            self.snapshots += 1;
            self.last_id = Some(id);
            return;
        }
        self.events += 1;
        if let Some(last) = self.last_id
            && id != last + 1
        {
            self.violations.push(if id <= last {
                format!("event {id} ({event}) after {last}: seen twice")
            } else {
                format!("event {id} ({event}) after {last}: gap")
            });
        }
        self.last_id = Some(self.last_id.map_or(id, |last| last.max(id)));
        if (event == "scan.recorded" || event == "scan.rejected")
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(data)
            && value["device"] == crate::system::SCANNER
            && let Some(code) = value["code"].as_str()
        {
            self.scans
                .entry(code.to_owned())
                .or_default()
                .push((value["accepted"] == true, Instant::now()));
        }
        if event == "order.created"
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(data)
            && let Some(order_id) = value["order_id"].as_str()
        {
            self.created
                .entry(order_id.to_owned())
                .or_insert_with(Instant::now);
        }
    }
}

/// Reads `base`'s event stream until `stop`, reconnecting after every end.
pub async fn run(base: String, tablet: SharedTablet, stop: CancellationToken) {
    let client = kitchen_testkit::http::client();
    loop {
        let last = lock(&tablet).last_id;
        let mut request = client.get(format!("{base}/orders/events"));
        if let Some(id) = last {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let opened = tokio::select! {
            opened = tokio::time::timeout(Duration::from_secs(5), request.send()) => opened,
            () = stop.cancelled() => return,
        };
        if let Ok(Ok(response)) = opened
            && response.status() == 200
        {
            let mut stream = response.bytes_stream();
            let mut buffer = String::new();
            loop {
                // Keep-alives come every few seconds: a silent stream is a dead link.
                let chunk = tokio::select! {
                    chunk = tokio::time::timeout(Duration::from_secs(30), stream.next()) => chunk,
                    () = stop.cancelled() => return,
                };
                let Ok(Some(Ok(chunk))) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        frame
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim_start().to_owned())
                    };
                    let (Some(event), Some(data)) = (field("event"), field("data")) else {
                        continue;
                    };
                    let id = field("id").and_then(|id| id.parse().ok());
                    lock(&tablet).frame(id, &event, &data);
                }
            }
        }
        lock(&tablet).reconnects += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tablet;

    fn check(frames: &[(i64, &str)], violations: &[&str]) {
        let mut tablet = Tablet::default();
        for (id, event) in frames {
            tablet.frame(Some(*id), event, r#"{"order_id":"o1"}"#);
        }
        assert_eq!(tablet.violations, violations);
    }

    #[test]
    fn ids_must_follow_the_snapshot_without_gap_or_repeat() {
        check(&[(5, "snapshot"), (6, "order.created"), (7, "x")], &[]);
        // A reconnect that replays from the log continues the numbering.
        check(&[(5, "snapshot"), (6, "x"), (7, "x"), (8, "x")], &[]);
        check(
            &[(5, "snapshot"), (6, "x"), (8, "x")],
            &["event 8 (x) after 6: gap"],
        );
        check(
            &[(5, "snapshot"), (6, "x"), (7, "x"), (7, "x")],
            &["event 7 (x) after 7: seen twice"],
        );
        // A new snapshot (an id older than the log keeps) restarts the numbering.
        check(
            &[(5, "snapshot"), (6, "x"), (40, "snapshot"), (41, "x")],
            &[],
        );
    }

    #[test]
    fn the_first_order_created_is_when_the_tablet_saw_it() {
        let mut tablet = Tablet::default();
        tablet.frame(Some(1), "order.created", r#"{"order_id":"o1"}"#);
        let first = tablet.created["o1"];
        tablet.frame(Some(2), "order.created", r#"{"order_id":"o1"}"#);
        assert_eq!(tablet.created["o1"], first);
        assert_eq!(tablet.events, 2);
    }
}
