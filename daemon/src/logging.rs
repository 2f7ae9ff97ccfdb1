//! Logging for both services. Under systemd (stderr is the journal stream named by
//! `$JOURNAL_STREAM`) every `tracing` event goes to the journal through systemd-journal-logger:
//! its level as the journal priority, each field as a journal field of its own (`order_id` →
//! `ORDER_ID`, so `journalctl -u edge-agent ORDER_ID=...` finds an order's lines) and, so that a
//! plain `journalctl` reads like the terminal, also in the message text. Anywhere else: text (or
//! JSON lines) on stderr. `RUST_LOG` filters both (default `info`). Either way the last
//! [`RECENT_LINES`] warnings and errors are also kept in memory ([`recent_problems`]), for a
//! service to hand out on request (the agent's `diagnostics` command), whatever `RUST_LOG` says.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    sync::{LazyLock, Mutex},
};

use systemd_journal_logger::JournalLog;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, fmt, layer::Context, prelude::*, registry::Registry,
};

use crate::sync::LockExt;

/// Warnings and errors kept in memory, newest last.
pub const RECENT_LINES: usize = 50;

static RECENT: LazyLock<Mutex<VecDeque<String>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(RECENT_LINES)));

/// Installs the global subscriber: the journal when systemd connected stderr to it, else stderr
/// (`json`: one JSON object per line); both keep the recent warnings and errors
/// ([`recent_problems`]). Does nothing if one is installed already (tests).
pub fn init(json: bool) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = JournalLog::new()
    {
        let _ = tracing_subscriber::registry()
            .with(JournalLayer { journal }.with_filter(filter()))
            .with(RecentLayer.with_filter(LevelFilter::WARN))
            .try_init();
        return;
    }
    // Colours only on a terminal: logs in files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter())
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(text)
        .with(RecentLayer.with_filter(LevelFilter::WARN))
        .try_init();
}

/// The last [`RECENT_LINES`] warnings and errors logged through [`init`]'s subscriber (or a
/// [`RecentLayer`]), oldest first: `<RFC 3339 time> WARN <target>: <message> key=value…`.
pub fn recent_problems() -> Vec<String> {
    RECENT.lock_or_recover().iter().cloned().collect()
}

/// Keeps each event it sees in the bounded in-memory ring [`recent_problems`] reads; give it a
/// `WARN` filter. Installed by [`init`]; a test may install it in a subscriber of its own.
pub struct RecentLayer;

impl<S: Subscriber> Layer<S> for RecentLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = format!(
            "{at} {} {}: {}",
            metadata.level(),
            metadata.target(),
            fields.text()
        );
        let mut recent = RECENT.lock_or_recover();
        while recent.len() >= RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line);
    }
}

/// Writes each event to the journal as a `log` record whose key-values are the event's fields.
struct JournalLayer {
    journal: JournalLog,
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let text = fields.text();
        let key_values: Vec<(&str, &str)> = fields
            .values
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        log::Log::log(
            &self.journal,
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(log_level(*metadata.level()))
                .target(metadata.target())
                .module_path(metadata.module_path())
                .file(metadata.file())
                .line(metadata.line())
                .key_values(&key_values)
                .build(),
        );
    }
}

/// tracing's levels as log's; systemd-journal-logger maps those to priorities (ERROR → err,
/// WARN → warning, INFO → notice, DEBUG → info, TRACE → debug).
fn log_level(level: Level) -> log::Level {
    match level {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        Level::TRACE => log::Level::Trace,
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(&'static str, String)>,
}

impl Fields {
    /// The message followed by `key=value` for each field, as the terminal format shows them.
    fn text(&self) -> String {
        let mut text = self.message.clone();
        for (key, value) in &self.values {
            let separator = if text.is_empty() { "" } else { " " };
            let _ = write!(text, "{separator}{key}={value}");
        }
        text
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.values.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let value = format!("{value:?}");
        if field.name() == "message" {
            self.message = value;
        } else {
            self.values.push((field.name(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event's text and fields, as the journal layer records them.
    type Recorded = (String, Vec<(&'static str, String)>);

    struct Capture(std::sync::Arc<std::sync::Mutex<Option<Recorded>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let text = fields.text();
            *self.0.lock().expect("lock") = Some((text, fields.values));
        }
    }

    fn fields_of(record: impl FnOnce()) -> Recorded {
        let seen = std::sync::Arc::default();
        let subscriber = tracing_subscriber::registry().with(Capture(std::sync::Arc::clone(&seen)));
        tracing::subscriber::with_default(subscriber, record);
        let seen = seen.lock().expect("lock").take();
        seen.expect("an event")
    }

    #[test]
    fn fields_become_key_values_and_text() {
        let order_id = "4f0c2a7e";
        let (text, values) = fields_of(|| {
            tracing::warn!(order_id, attempt = 3, error = %"timed out", "publish failed");
        });
        assert_eq!(
            text,
            "publish failed order_id=4f0c2a7e attempt=3 error=timed out"
        );
        assert_eq!(
            values,
            [
                ("order_id", "4f0c2a7e".to_owned()),
                ("attempt", "3".to_owned()),
                ("error", "timed out".to_owned()),
            ]
        );
        assert_eq!(log_level(Level::WARN), log::Level::Warn);
    }

    #[test]
    fn the_recent_ring_keeps_the_last_warnings_and_errors() {
        let subscriber =
            tracing_subscriber::registry().with(RecentLayer.with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            for n in 0..RECENT_LINES + 5 {
                tracing::warn!(n, "ring test");
            }
            tracing::error!(reason = "disk full", "ring test failed");
        });
        let recent: Vec<String> = recent_problems()
            .into_iter()
            .filter(|line| line.contains("ring test"))
            .collect();
        assert_eq!(recent.len(), RECENT_LINES);
        let last = recent.last().expect("a line");
        assert!(
            last.ends_with(
                " ERROR kitchen_daemon::logging::tests: ring test failed reason=disk full"
            ),
            "{last}"
        );
        assert!(recent[0].ends_with("ring test n=6"), "{}", recent[0]);
        assert!(!recent.iter().any(|line| line.contains("not kept")));
    }
}
