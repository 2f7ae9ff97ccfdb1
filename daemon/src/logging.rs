//! Logging for both services. Under systemd (stderr is the journal stream named by
//! `$JOURNAL_STREAM`) every `tracing` event goes to the journal through systemd-journal-logger:
//! its level as the journal priority, each field as a journal field of its own (`order_id` →
//! `ORDER_ID`, so `journalctl -u edge-agent ORDER_ID=...` finds an order's lines) and, so that a
//! plain `journalctl` reads like the terminal, also in the message text. Anywhere else: text (or
//! JSON lines) on stderr. `RUST_LOG` filters both (default `info`).

use std::fmt::Write as _;

use systemd_journal_logger::JournalLog;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::Context, prelude::*};

/// Installs the global subscriber: the journal when systemd connected stderr to it, else stderr
/// (`json`: one JSON object per line). Does nothing if one is installed already (tests).
pub fn init(json: bool) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = JournalLog::new()
    {
        let _ = tracing_subscriber::registry()
            .with(JournalLayer { journal }.with_filter(filter()))
            .try_init();
        return;
    }
    // Colours only on a terminal: logs in files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
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
}
