//! Agent configuration: defaults in code, then an optional TOML file, then the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

mod derived;
mod links;
mod mqtt;
mod printer;
mod scanner;

pub use links::{CaBundle, DEFAULT_CA_FILE, Links, parse_ca_pem};
pub use mqtt::{MQTT_URL_EXPECTED, MqttTarget, MqttUrl, check_mqtt_kitchen_id, parse_mqtt_url};
pub use printer::{DEFAULT_PORT as PRINTER_PORT, PrinterConfig, PrinterTarget};
pub use scanner::{ScannerConfig, Suffix};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// LAN HTTP address (`AGENT_LISTEN`).
    pub listen: SocketAddr,
    /// Directory of the SQLite file `edge-agent.db` (`AGENT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// RabbitMQ URL (`AMQP_URL`).
    pub amqp_url: String,
    /// This kitchen's id; names its queue `edge.<KITCHEN_ID>` (`KITCHEN_ID`).
    pub kitchen_id: String,
    /// Otter store ids this kitchen serves (`STORE_IDS`, comma-separated): with `kitchen_id`,
    /// what makes the box provisioned, and shown in its summary. Deprecated for routing: the
    /// queue's bindings are the cloud's (`cloud-relay kitchen add`, from the kitchen's
    /// reference data in PostgreSQL); the agent binds nothing.
    pub store_ids: Vec<String>,
    /// Reference data TOML (`REFERENCE_FILE`); without it every line is `unassigned`.
    pub reference_file: Option<PathBuf>,
    /// The relay's order exchange (`AGENT_ORDER_EXCHANGE`). Ignored: the agent no longer
    /// declares or binds anything (the cloud does); still accepted so existing configs load.
    pub order_exchange: String,
    /// Unacknowledged deliveries in flight (`AGENT_PREFETCH`).
    pub prefetch: u16,
    /// Bound on each broker operation, in milliseconds (`AGENT_AMQP_TIMEOUT_MS`).
    pub amqp_timeout_ms: u64,
    /// Scheduled orders firing further ahead than this are upcoming, not counted, in minutes
    /// (`AGENT_SCHEDULE_HORIZON_MINUTES`).
    pub schedule_horizon_minutes: u32,
    /// Event-log entries kept for reconnecting displays (`AGENT_EVENT_LOG_KEEP`); an older
    /// `Last-Event-ID` gets a snapshot first.
    pub event_log_keep: u32,
    /// Live events a display may fall behind before it is disconnected to replay
    /// (`AGENT_SSE_LAG_LIMIT`).
    pub sse_lag_limit: u32,
    /// Serial barcode scanners, `[[scanners]]` (file only; docs/scanners.md).
    pub scanners: Vec<ScannerConfig>,
    /// How long a scanner whose device is missing or went away waits before opening it again,
    /// in milliseconds (`AGENT_SCANNER_RETRY_MS`).
    pub scanner_retry_ms: u64,
    /// The cloud PostgreSQL the kitchen syncs with, as this kitchen's own role
    /// (`AGENT_DATABASE_URL`); without it nothing syncs and the records wait in the outbox.
    /// Keep the password out of the command line: a config file readable by the agent only, or
    /// `database_url_file`.
    pub database_url: Option<String>,
    /// A file holding the database URL, e.g. a systemd credential (`AGENT_DATABASE_URL_FILE`).
    pub database_url_file: Option<PathBuf>,
    /// Records pushed per PostgreSQL transaction (`AGENT_SYNC_BATCH`).
    pub sync_batch: u32,
    /// Records waiting longer than this raise the sync alarm, in minutes
    /// (`AGENT_SYNC_ALARM_MINUTES`).
    pub sync_alarm_minutes: u32,
    /// How often the reference data version is checked in PostgreSQL, in seconds
    /// (`AGENT_REFERENCE_POLL_SECS`).
    pub reference_poll_secs: u32,
    /// How often the agent asks PostgreSQL for orders its queue may have missed, in seconds
    /// (`AGENT_RECONCILE_SECS`); also at start, on a sequence gap and when the feed reconnects.
    pub reconcile_secs: u32,
    /// Where `edge-agent provision` records why the last `kitchen.toml` was refused
    /// (`AGENT_PROVISION_ERROR_FILE`); the agent shows it on `/api/status` and the displays.
    pub provision_error_file: Option<PathBuf>,
    /// Where systemd-timesyncd says whether it synchronised the clock (`AGENT_TIMESYNC_DIR`,
    /// default `/run/systemd/timesync`). Until it has, new stock with a use-by date is refused
    /// and the displays warn; with no such directory the clock is trusted.
    pub timesync_dir: PathBuf,
    /// The one-time code that pairs the kitchen's first manager device (`AGENT_PAIRING_CODE`,
    /// or the credential `pairing_code`; set from `kitchen.toml` at provisioning). It pairs one
    /// device, once; later devices are paired with codes a manager device makes, or on the
    /// console (`edge-agent pair`). docs/security.md.
    pub pairing_code: Option<String>,
    /// Host names the LAN may use for the box besides its addresses, its host name (and
    /// `<host name>.local`) and `localhost` (`AGENT_ALLOWED_HOSTS`, comma-separated). A request
    /// naming any other `Host` is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// LAN connections served at once; more wait (`AGENT_MAX_CONNECTIONS`). The unit's
    /// `LimitNOFILE` is sized for it.
    pub max_connections: u32,
    /// Seconds a client has to send a request's head, also the idle time allowed between
    /// requests on a kept-alive connection (`AGENT_HEADER_TIMEOUT_SECS`).
    pub header_timeout_secs: u32,
    /// Seconds from a request's head to its answer, body included (`AGENT_REQUEST_TIMEOUT_SECS`).
    pub request_timeout_secs: u32,
    /// Live event streams open at once (`AGENT_MAX_STREAMS`), and per paired device
    /// (`AGENT_MAX_STREAMS_PER_DEVICE`).
    pub max_streams: u32,
    pub max_streams_per_device: u32,
    /// Writes (bumps, scans, batches…) a device may make per second on average, in bursts of
    /// four times that (`AGENT_WRITE_RATE`).
    pub write_rate: u32,
    /// The range of the prep time an order is accepted on Otter with
    /// (`AGENT_PREP_ESTIMATE_MIN_MINUTES` / `_MAX_MINUTES`; docs/otter.md).
    pub prep_estimate_min_minutes: u32,
    pub prep_estimate_max_minutes: u32,
    /// When the kitchen's day ends, local `HH:MM` (`AGENT_DAY_END`): an 86 "until end of day"
    /// lasts until then.
    pub day_end: String,
    /// The fleet channel's broker, `mqtt://[user@]host[:port]` (`MQTT_URL`; docs/fleet.md): the
    /// user name is the kitchen id unless the URL names one. Without it there is no fleet
    /// channel and the agent runs as before.
    pub mqtt_url: Option<String>,
    /// The box's MQTT password (`MQTT_PASSWORD`, or the credential `mqtt_password`; set from
    /// `kitchen.toml` at provisioning).
    pub mqtt_password: Option<String>,
    /// A file holding the MQTT password (`MQTT_PASSWORD_FILE`).
    pub mqtt_password_file: Option<PathBuf>,
    /// The relay's enrolment endpoint, `https://<relay>/enrol` (`AGENT_ENROL_URL`): where
    /// `edge-agent enrol` exchanges `enrol_token` for the kitchen's credentials.
    pub enrol_url: Option<String>,
    /// The one-time enrolment token from `cloud-relay kitchen enrol-token` (the credential
    /// `enrol_token`, written there by provisioning from `kitchen.toml`).
    pub enrol_token: Option<String>,
    /// PEM bundle of the CA certificates the broker (`amqps`) and PostgreSQL (`verify-full`)
    /// links trust besides the web PKI roots (`AGENT_CA_FILE`; empty: none). The default,
    /// `/etc/edge-agent/ca.pem` (written by provisioning from `kitchen.toml`'s `ca_pem`), is
    /// used when it exists; another path must exist.
    pub ca_file: Option<PathBuf>,
    /// ESC/POS ticket printers, `[[printers]]` (file only; docs/agent.md, "Printers").
    pub printers: Vec<PrinterConfig>,
    /// Seconds every tablet of a station must have been gone before its new tickets print on
    /// the fallback printer (`AGENT_PRINTER_FALLBACK_SECS`).
    pub printer_fallback_secs: u32,
    /// The first wait before a failed print is tried again, in milliseconds; it doubles up to
    /// 30 s (`AGENT_PRINTER_RETRY_MS`).
    pub printer_retry_ms: u64,
    /// Bound on connecting to a printer, writing a ticket and each status reply, in
    /// milliseconds (`AGENT_PRINTER_TIMEOUT_MS`).
    pub printer_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("/var/lib/edge-agent"),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            kitchen_id: String::new(),
            store_ids: Vec::new(),
            reference_file: None,
            order_exchange: kitchen_proto::ORDER_EXCHANGE.into(),
            prefetch: 64,
            amqp_timeout_ms: 10_000,
            schedule_horizon_minutes: 20,
            event_log_keep: 100_000,
            sse_lag_limit: 1024,
            scanners: Vec::new(),
            scanner_retry_ms: 3000,
            database_url: None,
            database_url_file: None,
            sync_batch: 500,
            sync_alarm_minutes: 10,
            reference_poll_secs: 30,
            reconcile_secs: 300,
            provision_error_file: None,
            timesync_dir: PathBuf::from(kitchen_daemon::clock::TIMESYNC_DIR),
            pairing_code: None,
            allowed_hosts: Vec::new(),
            max_connections: 4096,
            header_timeout_secs: 10,
            request_timeout_secs: 15,
            max_streams: 256,
            max_streams_per_device: 8,
            write_rate: 10,
            prep_estimate_min_minutes: 5,
            prep_estimate_max_minutes: 60,
            day_end: "04:00".into(),
            mqtt_url: None,
            mqtt_password: None,
            mqtt_password_file: None,
            enrol_url: None,
            enrol_token: None,
            ca_file: Some(PathBuf::from(DEFAULT_CA_FILE)),
            printers: Vec::new(),
            printer_fallback_secs: 30,
            printer_retry_ms: 1000,
            printer_timeout_ms: 5000,
        }
    }
}

/// A config key that may come from a credential file of the same name, and how to set it.
type Credential = (&'static str, fn(&mut Config, String));

/// Config keys that may come from a credential file of the same name (never logged): the broker
/// URL and the cloud database URL, each with its password.
pub const CREDENTIALS: &[Credential] = &[
    ("amqp_url", |config, url| config.amqp_url = url),
    ("database_url", |config, url| {
        config.database_url = Some(url)
    }),
    ("pairing_code", |config, code| {
        config.pairing_code = Some(code)
    }),
    ("mqtt_password", |config, password| {
        config.mqtt_password = Some(password)
    }),
    ("enrol_token", |config, token| {
        config.enrol_token = Some(token)
    }),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid value for environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("invalid config: {reason}")]
    Invalid { reason: String },
}

impl Config {
    /// Defaults, overlaid with `path` (if given), overlaid with the environment.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
            }
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        if let Some(dir) = std::env::var_os(kitchen_daemon::credentials::DIRECTORY_VAR) {
            config.apply_credentials(std::path::Path::new(&dir))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Secrets from systemd's credentials directory (`LoadCredential=`, `$CREDENTIALS_DIRECTORY`)
    /// override the file and the environment: `amqp_url` holds the broker URL with its
    /// password, so the password is on neither the command line nor in the environment.
    /// A credential that is absent leaves the key as it was; an empty one too.
    pub fn apply_credentials(&mut self, dir: &std::path::Path) -> Result<(), ConfigError> {
        for (name, set) in CREDENTIALS {
            let value = kitchen_daemon::credentials::read(dir, name).map_err(|error| {
                ConfigError::Read {
                    path: dir.join(name).display().to_string(),
                    reason: error.to_string(),
                }
            })?;
            let Some(value) = value else { continue };
            set(self, value);
        }
        Ok(())
    }

    /// What no single key can say is wrong: scanner names are unique, the retry is not zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { reason };
        scanner::validate(&self.scanners).map_err(invalid)?;
        printer::validate(&self.printers).map_err(invalid)?;
        if self.printer_retry_ms == 0 || self.printer_timeout_ms == 0 {
            return Err(invalid(
                "printer_retry_ms and printer_timeout_ms must be above 0".into(),
            ));
        }
        if self.scanner_retry_ms == 0 {
            return Err(invalid("scanner_retry_ms must be above 0".into()));
        }
        for (name, value) in [
            ("sync_batch", self.sync_batch),
            ("sync_alarm_minutes", self.sync_alarm_minutes),
            ("reference_poll_secs", self.reference_poll_secs),
            ("reconcile_secs", self.reconcile_secs),
            ("max_connections", self.max_connections),
            ("header_timeout_secs", self.header_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("max_streams", self.max_streams),
            ("max_streams_per_device", self.max_streams_per_device),
            ("write_rate", self.write_rate),
            ("prep_estimate_min_minutes", self.prep_estimate_min_minutes),
        ] {
            if value == 0 {
                return Err(invalid(format!("{name} must be above 0")));
            }
        }
        if self.prep_estimate_max_minutes < self.prep_estimate_min_minutes
            || self.prep_estimate_max_minutes > crate::otter::MAX_PREP_MINUTES
        {
            return Err(invalid(format!(
                "prep_estimate_max_minutes must be from prep_estimate_min_minutes to {}",
                crate::otter::MAX_PREP_MINUTES
            )));
        }
        self.otter_settings().map_err(|_| {
            invalid(format!(
                "day_end {:?} is not a time of day (HH:MM)",
                self.day_end
            ))
        })?;
        if let Some(code) = &self.pairing_code
            && crate::device::normalize_code(code).is_none_or(|code| code.len() < 8)
        {
            return Err(invalid(
                "pairing_code must have at least 8 letters or digits".into(),
            ));
        }
        if self.database_url.is_some() && self.database_url_file.is_some() {
            return Err(invalid(
                "give database_url or database_url_file, not both".into(),
            ));
        }
        self.validate_mqtt().map_err(invalid)?;
        Ok(())
    }

    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                reason: e.to_string(),
            })
        }
        if let Some(value) = lookup("AGENT_LISTEN") {
            self.listen = parsed("AGENT_LISTEN", &value)?;
        }
        if let Some(value) = lookup("AGENT_DATA_DIR") {
            self.data_dir = PathBuf::from(value);
        }
        if let Some(value) = lookup("AMQP_URL") {
            self.amqp_url = value;
        }
        if let Some(value) = lookup("KITCHEN_ID") {
            self.kitchen_id = value.trim().to_owned();
        }
        if let Some(value) = lookup("STORE_IDS") {
            self.store_ids = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = lookup("REFERENCE_FILE") {
            self.reference_file = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(value) = lookup("AGENT_ORDER_EXCHANGE") {
            self.order_exchange = value;
        }
        if let Some(value) = lookup("AGENT_PREFETCH") {
            self.prefetch = parsed("AGENT_PREFETCH", &value)?;
        }
        if let Some(value) = lookup("AGENT_AMQP_TIMEOUT_MS") {
            self.amqp_timeout_ms = parsed("AGENT_AMQP_TIMEOUT_MS", &value)?;
        }
        if let Some(value) = lookup("AGENT_SCHEDULE_HORIZON_MINUTES") {
            self.schedule_horizon_minutes = parsed("AGENT_SCHEDULE_HORIZON_MINUTES", &value)?;
        }
        if let Some(value) = lookup("AGENT_EVENT_LOG_KEEP") {
            self.event_log_keep = parsed("AGENT_EVENT_LOG_KEEP", &value)?;
        }
        if let Some(value) = lookup("AGENT_SSE_LAG_LIMIT") {
            self.sse_lag_limit = parsed("AGENT_SSE_LAG_LIMIT", &value)?;
        }
        if let Some(value) = lookup("AGENT_SCANNER_RETRY_MS") {
            self.scanner_retry_ms = parsed("AGENT_SCANNER_RETRY_MS", &value)?;
        }
        if let Some(value) = lookup("AGENT_DATABASE_URL") {
            self.database_url = Some(value).filter(|v| !v.trim().is_empty());
        }
        if let Some(value) = lookup("AGENT_DATABASE_URL_FILE") {
            self.database_url_file =
                Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(value) = lookup("AGENT_SYNC_BATCH") {
            self.sync_batch = parsed("AGENT_SYNC_BATCH", &value)?;
        }
        if let Some(value) = lookup("AGENT_SYNC_ALARM_MINUTES") {
            self.sync_alarm_minutes = parsed("AGENT_SYNC_ALARM_MINUTES", &value)?;
        }
        if let Some(value) = lookup("AGENT_REFERENCE_POLL_SECS") {
            self.reference_poll_secs = parsed("AGENT_REFERENCE_POLL_SECS", &value)?;
        }
        if let Some(value) = lookup("AGENT_RECONCILE_SECS") {
            self.reconcile_secs = parsed("AGENT_RECONCILE_SECS", &value)?;
        }
        if let Some(value) = lookup("AGENT_PROVISION_ERROR_FILE") {
            self.provision_error_file =
                Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(value) = lookup("AGENT_TIMESYNC_DIR") {
            self.timesync_dir = PathBuf::from(value);
        }
        if let Some(value) = lookup("AGENT_PAIRING_CODE") {
            self.pairing_code = Some(value).filter(|v| !v.trim().is_empty());
        }
        if let Some(value) = lookup("MQTT_URL") {
            self.mqtt_url = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        }
        if let Some(value) = lookup("MQTT_PASSWORD") {
            self.mqtt_password = Some(value).filter(|v| !v.trim().is_empty());
        }
        if let Some(value) = lookup("MQTT_PASSWORD_FILE") {
            self.mqtt_password_file =
                Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(value) = lookup("AGENT_ENROL_URL") {
            self.enrol_url = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        }
        if let Some(value) = lookup("AGENT_PRINTER_RETRY_MS") {
            self.printer_retry_ms = parsed("AGENT_PRINTER_RETRY_MS", &value)?;
        }
        if let Some(value) = lookup("AGENT_PRINTER_TIMEOUT_MS") {
            self.printer_timeout_ms = parsed("AGENT_PRINTER_TIMEOUT_MS", &value)?;
        }
        if let Some(value) = lookup("AGENT_CA_FILE") {
            self.ca_file = links::ca_file_from_env(&value);
        }
        if let Some(value) = lookup("AGENT_DAY_END") {
            self.day_end = value;
        }
        if let Some(value) = lookup("AGENT_ALLOWED_HOSTS") {
            self.allowed_hosts = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
        }
        for (name, key) in [
            ("AGENT_MAX_CONNECTIONS", &mut self.max_connections),
            ("AGENT_HEADER_TIMEOUT_SECS", &mut self.header_timeout_secs),
            ("AGENT_REQUEST_TIMEOUT_SECS", &mut self.request_timeout_secs),
            ("AGENT_MAX_STREAMS", &mut self.max_streams),
            (
                "AGENT_MAX_STREAMS_PER_DEVICE",
                &mut self.max_streams_per_device,
            ),
            ("AGENT_WRITE_RATE", &mut self.write_rate),
            (
                "AGENT_PRINTER_FALLBACK_SECS",
                &mut self.printer_fallback_secs,
            ),
            (
                "AGENT_PREP_ESTIMATE_MIN_MINUTES",
                &mut self.prep_estimate_min_minutes,
            ),
            (
                "AGENT_PREP_ESTIMATE_MAX_MINUTES",
                &mut self.prep_estimate_max_minutes,
            ),
        ] {
            if let Some(value) = lookup(name) {
                *key = parsed(name, &value)?;
            }
        }
        Ok(())
    }

    /// The database URL to sync with: `database_url`, or the first line of `database_url_file`.
    pub fn sync_database_url(&self) -> Result<Option<String>, ConfigError> {
        match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| text.lines().next().map(|l| l.trim().to_owned()))
                .map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            (None, None) => Ok(None),
        }
    }

    /// Whether the agent knows which kitchen it is; without that it serves the LAN only.
    pub fn provisioned(&self) -> bool {
        !self.kitchen_id.is_empty() && !self.store_ids.is_empty()
    }

    pub fn schedule_horizon_ms(&self) -> i64 {
        i64::from(self.schedule_horizon_minutes) * 60_000
    }

    pub fn amqp_timeout(&self) -> Duration {
        Duration::from_millis(self.amqp_timeout_ms)
    }

    pub fn scanner_retry(&self) -> Duration {
        Duration::from_millis(self.scanner_retry_ms)
    }

    /// Where the kitchen sends which tickets.
    pub fn print_routes(&self) -> crate::receipt::Routes {
        printer::routes(&self.printers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_store_ids_split() {
        let mut config = Config::default();
        let env = |name: &str| match name {
            "KITCHEN_ID" => Some(" bk-01 ".to_owned()),
            "STORE_IDS" => Some("kitchen-bk-01, kitchen-bk-02,,".to_owned()),
            "AGENT_LISTEN" => Some("127.0.0.1:9090".to_owned()),
            _ => None,
        };
        config.apply_env(env).expect("valid");
        assert_eq!(config.kitchen_id, "bk-01");
        assert_eq!(config.store_ids, ["kitchen-bk-01", "kitchen-bk-02"]);
        assert_eq!(config.listen.port(), 9090);
        assert!(config.provisioned());
        assert!(!Config::default().provisioned());
        let error = config
            .apply_env(|name| (name == "AGENT_PREFETCH").then(|| "lots".to_owned()))
            .expect_err("not a number");
        assert!(error.to_string().contains("AGENT_PREFETCH"), "{error}");
    }

    #[test]
    fn credentials_override_the_file_and_environment() {
        let dir = std::env::temp_dir().join(format!("agent-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut config = Config {
            amqp_url: "amqp://from-file".into(),
            ..Config::default()
        };
        config.apply_credentials(&dir).expect("none is fine");
        assert_eq!(config.amqp_url, "amqp://from-file");
        std::fs::write(dir.join("amqp_url"), "").expect("write");
        config.apply_credentials(&dir).expect("empty is fine");
        assert_eq!(config.amqp_url, "amqp://from-file");
        std::fs::write(dir.join("amqp_url"), "amqps://k1:s3cret@broker:5671/%2f\n").expect("write");
        config.apply_credentials(&dir).expect("read");
        assert_eq!(config.amqp_url, "amqps://k1:s3cret@broker:5671/%2f");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn scanners_are_read_with_their_defaults() {
        use crate::{
            config::{ScannerConfig, Suffix},
            scan::ScanRole,
        };
        let config = parse(
            r#"
            scanner_retry_ms = 500

            [[scanners]]
            name = "fry-1"
            device = "/dev/serial/by-id/usb-Zebra_Technologies_Symbol_Bar_Code_Scanner-if00"
            role = "station"
            station = "fry"

            [[scanners]]
            name = "prep"
            device = "/dev/ttyUSB0"
            baud = 115200
            suffix = "none"
            idle_ms = 80
            prefix = "SCN:"
            role = "prep"

            [[scanners]]
            name = "back-door"
            device = "/dev/ttyACM1"
            suffix = "crlf"
            role = "receiving"
            "#,
        )
        .expect("valid");
        assert_eq!(config.scanner_retry_ms, 500);
        assert_eq!(
            config.scanners,
            [
                ScannerConfig::station(
                    "fry-1",
                    "/dev/serial/by-id/usb-Zebra_Technologies_Symbol_Bar_Code_Scanner-if00",
                    "fry"
                ),
                ScannerConfig {
                    name: "prep".into(),
                    device: "/dev/ttyUSB0".into(),
                    baud: 115_200,
                    suffix: Suffix::None,
                    idle_ms: 80,
                    prefix: Some("SCN:".into()),
                    role: ScanRole::Prep,
                },
                ScannerConfig {
                    name: "back-door".into(),
                    device: "/dev/ttyACM1".into(),
                    suffix: Suffix::Crlf,
                    role: ScanRole::Receiving,
                    ..ScannerConfig::station("back-door", "", "")
                },
            ]
        );
        assert_eq!(config.scanners[0].baud, 9600);
        assert_eq!(config.scanners[0].suffix, Suffix::Cr);
        assert_eq!(config.scanners[0].idle_ms, 50);
        assert_eq!(Config::default().scanner_retry_ms, 3000);
    }

    #[test]
    fn bad_scanner_entries_are_refused_with_the_reason() {
        let scanner =
            |body: &str| format!("[[scanners]]\nname = \"s1\"\ndevice = \"/dev/ttyACM0\"\n{body}");
        let check = |text: String, expected: &str| {
            let error = parse(&text).expect_err(&text);
            assert!(
                error.contains(expected),
                "{error:?} should say {expected:?}"
            );
        };
        check(
            scanner("role = \"station\""),
            r#"scanner "s1": role "station" needs `station`"#,
        );
        check(
            scanner("role = \"prep\"\nstation = \"fry\""),
            r#"scanner "s1": a prep scanner has no `station`"#,
        );
        check(
            scanner("role = \"cook\""),
            r#"unknown role "cook": station, prep, receiving or expo"#,
        );
        check(
            scanner("role = \"prep\"\nsuffix = \"tab\""),
            "unknown variant `tab`",
        );
        check(
            scanner("role = \"prep\"\nparity = \"even\""),
            "unknown field `parity`",
        );
        check(scanner("station = \"fry\""), "missing field `role`");
        check(
            scanner("role = \"prep\"\nidle_ms = 0"),
            "idle_ms must be 1–10000, not 0",
        );
        check(
            scanner("role = \"prep\"\nprefix = \"\""),
            "prefix must be 1–255 bytes",
        );
        check(
            "[[scanners]]\nname = \"fry 1\"\ndevice = \"/dev/ttyACM0\"\nrole = \"prep\"".into(),
            "scanner name \"fry 1\"",
        );
        check(
            format!(
                "{}\n{}",
                scanner("role = \"prep\""),
                scanner("role = \"receiving\"")
            ),
            "two scanners are named \"s1\"",
        );
        check(
            "scanner_retry_ms = 0".into(),
            "scanner_retry_ms must be above 0",
        );
    }
}
