//! Relay configuration: defaults in code, then an optional TOML file, then the environment.

mod broker_admin;
mod enrol;
mod mqtt;
mod otter_api;

pub use broker_admin::BrokerAdminConfig;
pub use enrol::{EnrolConfig, MAX_TOKEN_VALID_HOURS};
pub use mqtt::{BrokerAddress, MqttConfig};
pub use otter_api::{OtterApiConfig, OtterLimits, OtterPaths};

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::SecretString;
use serde::Deserialize;

/// Everything the relay can be told. Every key can also be set from the environment; the
/// variable names are listed on each field and in `docs/relay.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the public HTTP server binds: the webhook, `/ping` and `/healthz`
    /// (`RELAY_LISTEN`). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address the admin HTTP server binds: `/readyz`, `/metrics` and `/healthz`
    /// (`RELAY_ADMIN_LISTEN`). Loopback by default; never expose it to the internet.
    pub admin_listen: SocketAddr,
    /// PostgreSQL connection URL (`DATABASE_URL`).
    pub database_url: SecretString,
    /// Size of the PostgreSQL connection pool (`RELAY_DATABASE_POOL_SIZE`).
    pub database_pool_size: u32,
    /// RabbitMQ URL (`AMQP_URL`).
    pub amqp_url: SecretString,
    /// A PEM bundle of CAs the relay trusts beside the web PKI roots on its own links — RabbitMQ
    /// (`amqps`), PostgreSQL (`verify-full`) and MQTT (`mqtts`) — for servers with a private CA
    /// (`RELAY_CA_FILE`). Unset: the web PKI roots (and PostgreSQL's `sslrootcert`) only.
    pub ca_file: Option<PathBuf>,
    /// Direct exchange for kitchen `OrderEvent`s (`RELAY_ORDER_EXCHANGE`).
    pub order_exchange: String,
    /// Fanout exchange for the raw JSON events (`RELAY_RAW_EVENTS_EXCHANGE`).
    pub raw_events_exchange: String,
    /// Otter webhook secret, the HMAC-SHA256 key (`OTTER_WEBHOOK_SECRET`). Required unless
    /// `insecure_skip_signature` is set.
    pub otter_webhook_secret: Option<SecretString>,
    /// The secret being rotated out (`OTTER_WEBHOOK_SECRET_PREVIOUS`): while it is set, a
    /// signature made with either secret is accepted; `relay_webhook_signatures_total` says
    /// which one matched, so it can go once `previous` stops counting.
    pub otter_webhook_secret_previous: Option<SecretString>,
    /// Accept unsigned webhooks (`--insecure-skip-signature`, `RELAY_INSECURE_SKIP_SIGNATURE`).
    /// For local experiments only: refused unless `listen` is a loopback address; the relay
    /// warns at start and on every request.
    pub insecure_skip_signature: bool,
    /// Connections the public listener serves at once; more wait in the kernel's backlog
    /// (`RELAY_MAX_CONNECTIONS`). The unit's `LimitNOFILE` is sized for it.
    pub max_connections: usize,
    /// Time a client has to send a request's head, and the longest a kept-alive connection
    /// may sit idle (`RELAY_HEADER_TIMEOUT_MS`). Cuts off slowloris clients.
    #[serde(with = "millis")]
    pub header_timeout: Duration,
    /// Time from a request's head to its answer, body read included; past it the client gets
    /// `408` (`RELAY_REQUEST_TIMEOUT_MS`). Must be longer than `ingest_timeout`.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// Webhooks checked and stored at once (body read, signature, commit wait); one more is
    /// answered `503` with `Retry-After` at once instead of queueing
    /// (`RELAY_MAX_INFLIGHT_WEBHOOKS`).
    pub max_inflight_webhooks: usize,
    /// Rejected (4xx) requests a client address may make in a burst before it is answered
    /// `429` without being read (`RELAY_REJECTED_BURST`). 0 turns the per-address limit off.
    pub rejected_burst: u32,
    /// Rate at which a client address earns back rejected requests, per minute
    /// (`RELAY_REJECTED_PER_MINUTE`).
    pub rejected_per_minute: u32,
    /// Client addresses whose rejections are remembered; past it the least recently seen are
    /// forgotten (`RELAY_REJECTED_MAX_CLIENTS`).
    pub rejected_max_clients: usize,
    /// Parallel PostgreSQL writers for webhooks; events of one store always go to the same
    /// writer (`RELAY_INGEST_WRITERS`).
    pub ingest_writers: usize,
    /// Most webhooks committed in one PostgreSQL transaction (`RELAY_INGEST_BATCH_MAX`).
    pub ingest_batch_max: usize,
    /// Most outbox rows published (and awaiting confirms) at once (`RELAY_PUBLISH_BATCH_MAX`).
    pub publish_batch_max: i64,
    /// How long a webhook waits for its commit before it is answered 503
    /// (`RELAY_INGEST_TIMEOUT_MS`).
    #[serde(with = "millis")]
    pub ingest_timeout: Duration,
    /// Timeout for each network operation against RabbitMQ: connect, declare, publish confirm
    /// (`RELAY_AMQP_TIMEOUT_MS`).
    #[serde(with = "millis")]
    pub amqp_timeout: Duration,
    /// Timeout for acquiring a PostgreSQL connection (`RELAY_DATABASE_TIMEOUT_MS`).
    #[serde(with = "millis")]
    pub database_timeout: Duration,
    /// How long shutdown waits for in-flight requests and the current publish
    /// (`RELAY_SHUTDOWN_GRACE_MS`).
    #[serde(with = "millis")]
    pub shutdown_grace: Duration,
    /// Calling Otter's API (`[otter_api]`, docs/otter.md).
    pub otter_api: OtterApiConfig,
    /// The fleet channel's broker (`[mqtt]`, docs/fleet.md).
    pub mqtt: MqttConfig,
    /// RabbitMQ's management API, for the `kitchen` subcommands only (`[broker_admin]`,
    /// docs/relay.md).
    pub broker_admin: BrokerAdminConfig,
    /// Enrolment of new boxes, `POST /enrol` (`[enrol]`, docs/security.md).
    pub enrol: EnrolConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8001)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8002)),
            database_url: SecretString::from("postgres://postgres@127.0.0.1:5432/kitchen"),
            database_pool_size: 16,
            amqp_url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            ca_file: None,
            order_exchange: kitchen_proto::ORDER_EXCHANGE.to_owned(),
            raw_events_exchange: kitchen_proto::RAW_EVENTS_EXCHANGE.to_owned(),
            otter_webhook_secret: None,
            otter_webhook_secret_previous: None,
            insecure_skip_signature: false,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_inflight_webhooks: 256,
            rejected_burst: 20,
            rejected_per_minute: 10,
            rejected_max_clients: 16384,
            ingest_writers: 4,
            ingest_batch_max: 64,
            publish_batch_max: 512,
            ingest_timeout: Duration::from_secs(10),
            amqp_timeout: Duration::from_secs(10),
            database_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            otter_api: OtterApiConfig::default(),
            mqtt: MqttConfig::default(),
            broker_admin: BrokerAdminConfig::default(),
            enrol: EnrolConfig::default(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid value for environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, overlaid with `path` (if given), overlaid with the environment; then validated.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config = Self::load_unvalidated(path)?;
        config.validate()?;
        Ok(config)
    }

    /// As `load`, leaving `validate` to the caller (so command-line flags can still apply).
    pub fn load_unvalidated(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        if let Some(dir) = std::env::var_os(kitchen_daemon::credentials::DIRECTORY_VAR) {
            config.apply_credentials(Path::new(&dir))?;
        }
        config.mqtt.ca_pem = config.ca_pem()?;
        Ok(config)
    }

    /// Secrets from systemd's credentials directory (`LoadCredential=`): a file named
    /// `database_url`, `amqp_url`, `otter_webhook_secret`, `otter_webhook_secret_previous`,
    /// `otter_client_id`, `otter_client_secret`, `mqtt_password` or `rabbitmq_admin_password`
    /// overrides the file and the environment, so no secret needs to be on the command line or
    /// in the environment.
    pub fn apply_credentials(&mut self, dir: &Path) -> Result<(), ConfigError> {
        for name in [
            "database_url",
            "amqp_url",
            "otter_webhook_secret",
            "otter_webhook_secret_previous",
            "otter_client_id",
            "otter_client_secret",
            "mqtt_password",
            "rabbitmq_admin_password",
        ] {
            let value = kitchen_daemon::credentials::read(dir, name).map_err(|source| {
                ConfigError::Read {
                    path: dir.join(name).display().to_string(),
                    source,
                }
            })?;
            let Some(value) = value else { continue };
            let secret = SecretString::from(value);
            match name {
                "database_url" => self.database_url = secret,
                "amqp_url" => self.amqp_url = secret,
                "otter_webhook_secret" => self.otter_webhook_secret = Some(secret),
                "otter_client_id" => self.otter_api.client_id = Some(secret),
                "otter_client_secret" => self.otter_api.client_secret = Some(secret),
                "mqtt_password" => self.mqtt.password = Some(secret),
                "rabbitmq_admin_password" => self.broker_admin.password = Some(secret),
                _ => self.otter_webhook_secret_previous = Some(secret),
            }
        }
        Ok(())
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Overlays the environment variables named in the field docs; `lookup` is `std::env::var`
    /// outside tests.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|error: T::Err| ConfigError::Env {
                    name,
                    reason: error.to_string(),
                })
        }
        let millis = |name: &'static str, value: String| {
            parsed::<u64>(name, value).map(Duration::from_millis)
        };
        if let Some(value) = lookup("RELAY_LISTEN") {
            self.listen = parsed("RELAY_LISTEN", value)?;
        }
        if let Some(value) = lookup("RELAY_ADMIN_LISTEN") {
            self.admin_listen = parsed("RELAY_ADMIN_LISTEN", value)?;
        }
        if let Some(value) = lookup("DATABASE_URL") {
            self.database_url = SecretString::from(value);
        }
        if let Some(value) = lookup("RELAY_DATABASE_POOL_SIZE") {
            self.database_pool_size = parsed("RELAY_DATABASE_POOL_SIZE", value)?;
        }
        if let Some(value) = lookup("AMQP_URL") {
            self.amqp_url = SecretString::from(value);
        }
        if let Some(value) = lookup("RELAY_ORDER_EXCHANGE") {
            self.order_exchange = value;
        }
        if let Some(value) = lookup("RELAY_RAW_EVENTS_EXCHANGE") {
            self.raw_events_exchange = value;
        }
        if let Some(value) = lookup("OTTER_WEBHOOK_SECRET") {
            self.otter_webhook_secret = Some(SecretString::from(value));
        }
        if let Some(value) = lookup("OTTER_WEBHOOK_SECRET_PREVIOUS") {
            // Set empty to end a rotation without removing the variable.
            self.otter_webhook_secret_previous = Some(value)
                .filter(|value| !value.is_empty())
                .map(SecretString::from);
        }
        if let Some(value) = lookup("RELAY_INSECURE_SKIP_SIGNATURE") {
            self.insecure_skip_signature = parsed("RELAY_INSECURE_SKIP_SIGNATURE", value)?;
        }
        if let Some(value) = lookup("RELAY_MAX_CONNECTIONS") {
            self.max_connections = parsed("RELAY_MAX_CONNECTIONS", value)?;
        }
        if let Some(value) = lookup("RELAY_HEADER_TIMEOUT_MS") {
            self.header_timeout = millis("RELAY_HEADER_TIMEOUT_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_REQUEST_TIMEOUT_MS") {
            self.request_timeout = millis("RELAY_REQUEST_TIMEOUT_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_MAX_INFLIGHT_WEBHOOKS") {
            self.max_inflight_webhooks = parsed("RELAY_MAX_INFLIGHT_WEBHOOKS", value)?;
        }
        if let Some(value) = lookup("RELAY_REJECTED_BURST") {
            self.rejected_burst = parsed("RELAY_REJECTED_BURST", value)?;
        }
        if let Some(value) = lookup("RELAY_REJECTED_PER_MINUTE") {
            self.rejected_per_minute = parsed("RELAY_REJECTED_PER_MINUTE", value)?;
        }
        if let Some(value) = lookup("RELAY_REJECTED_MAX_CLIENTS") {
            self.rejected_max_clients = parsed("RELAY_REJECTED_MAX_CLIENTS", value)?;
        }
        if let Some(value) = lookup("RELAY_INGEST_WRITERS") {
            self.ingest_writers = parsed("RELAY_INGEST_WRITERS", value)?;
        }
        if let Some(value) = lookup("RELAY_INGEST_BATCH_MAX") {
            self.ingest_batch_max = parsed("RELAY_INGEST_BATCH_MAX", value)?;
        }
        if let Some(value) = lookup("RELAY_PUBLISH_BATCH_MAX") {
            self.publish_batch_max = parsed("RELAY_PUBLISH_BATCH_MAX", value)?;
        }
        if let Some(value) = lookup("RELAY_INGEST_TIMEOUT_MS") {
            self.ingest_timeout = millis("RELAY_INGEST_TIMEOUT_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_AMQP_TIMEOUT_MS") {
            self.amqp_timeout = millis("RELAY_AMQP_TIMEOUT_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_DATABASE_TIMEOUT_MS") {
            self.database_timeout = millis("RELAY_DATABASE_TIMEOUT_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_SHUTDOWN_GRACE_MS") {
            self.shutdown_grace = millis("RELAY_SHUTDOWN_GRACE_MS", value)?;
        }
        if let Some(value) = lookup("RELAY_CA_FILE") {
            self.ca_file = Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty());
        }
        self.otter_api.apply_env(&lookup);
        self.mqtt.apply_env(&lookup)?;
        self.broker_admin.apply_env(&lookup)?;
        self.enrol.apply_env(&lookup);
        Ok(())
    }

    /// Checks what the types cannot: a secret unless explicitly insecure (and then only on
    /// loopback), sane sizes and timeouts, two distinct listeners.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let secret_missing = self
            .otter_webhook_secret
            .as_ref()
            .is_none_or(|secret| secret.expose_secret().is_empty());
        if secret_missing && !self.insecure_skip_signature {
            return Err(ConfigError::Invalid(
                "OTTER_WEBHOOK_SECRET is required (or pass --insecure-skip-signature for local \
                 experiments)"
                    .into(),
            ));
        }
        if self.insecure_skip_signature && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "--insecure-skip-signature is only allowed on a loopback listen address \
                 (RELAY_LISTEN=127.0.0.1:{}), not {}: anyone who can reach it could inject orders",
                self.listen.port(),
                self.listen
            )));
        }
        let positive = [
            ("ingest_writers", self.ingest_writers as u64),
            ("ingest_batch_max", self.ingest_batch_max as u64),
            ("publish_batch_max", self.publish_batch_max.max(0) as u64),
            ("database_pool_size", u64::from(self.database_pool_size)),
            ("max_connections", self.max_connections as u64),
            ("max_inflight_webhooks", self.max_inflight_webhooks as u64),
            ("rejected_max_clients", self.rejected_max_clients as u64),
            ("header_timeout", self.header_timeout.as_millis() as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
            }
        }
        if self.rejected_burst > 0 && self.rejected_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "rejected_per_minute must be at least 1 (or rejected_burst 0 to turn the \
                 per-address limit off)"
                    .into(),
            ));
        }
        if self.request_timeout <= self.ingest_timeout {
            return Err(ConfigError::Invalid(format!(
                "request_timeout ({} ms) must be longer than ingest_timeout ({} ms), so a slow \
                 commit is answered 503 rather than cut off",
                self.request_timeout.as_millis(),
                self.ingest_timeout.as_millis()
            )));
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "listen and admin_listen are both {}; the admin endpoints need their own address",
                self.listen
            )));
        }
        if self.order_exchange.is_empty() || self.raw_events_exchange.is_empty() {
            return Err(ConfigError::Invalid(
                "exchange names must not be empty".into(),
            ));
        }
        self.otter_api.validate()?;
        self.broker_admin.validate()?;
        self.enrol.validate()?;
        self.mqtt.validate()?;
        self.check_database_link()?;
        self.check_amqp_link()
    }

    /// The TLS rule for the PostgreSQL link (`kitchen_daemon::links`): `sslmode=verify-full`
    /// unless the host is loopback. Also what the database-only subcommands check.
    pub fn check_database_link(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        kitchen_cloud_schema::connect::checked_options(
            "DATABASE_URL",
            self.database_url.expose_secret(),
        )
        .map(drop)
        .map_err(ConfigError::Invalid)
    }

    /// The CA bundle of `ca_file`, read and checked (every certificate parses, at least one).
    pub fn ca_pem(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::Invalid(format!("RELAY_CA_FILE {}: {error}", path.display()))
        })?;
        kitchen_daemon::links::parse_ca_pem(&text)
            .map(|bundle| Some(bundle.pem))
            .map_err(|reason| {
                ConfigError::Invalid(format!("RELAY_CA_FILE {}: {reason}", path.display()))
            })
    }

    /// The TLS rule for the broker link: `amqps://` unless the host is loopback.
    pub fn check_amqp_link(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        kitchen_daemon::links::check_amqp_url("AMQP_URL", self.amqp_url.expose_secret())
            .map_err(ConfigError::Invalid)
    }
}

/// Durations in config files are whole milliseconds (`ingest_timeout = 10000`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests;
