//! The `[mqtt]` section: the fleet channel's broker (docs/fleet.md). Without `url` the relay
//! has no fleet channel and runs as before.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// The broker the relay subscribes to and publishes commands through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtts://host:8883` (`MQTT_URL`); `mqtt://` to loopback only. Unset: no fleet channel.
    pub url: Option<String>,
    /// The relays' MQTT user (`MQTT_USERNAME`), `relay` in the shipped ACL.
    pub username: String,
    /// Its password (`MQTT_PASSWORD`, `MQTT_PASSWORD_FILE`, or credential `mqtt_password`).
    pub password: Option<SecretString>,
    /// The subscriber connects as `<client_id>-fleet` (one persistent session per database);
    /// command publishers as `<client_id>-cmd-<random>`.
    pub client_id: String,
    /// A command still queued for an offline box this long is dropped by the broker.
    pub command_expiry_secs: u32,
    /// Telemetry history kept in `fleet.telemetry`.
    pub telemetry_retention_hours: u32,
    /// MQTT keep-alive of the relay's connections.
    pub keep_alive_secs: u16,
    /// The relay's CA bundle (`RELAY_CA_FILE`), read when the config is loaded.
    #[serde(skip)]
    pub ca_pem: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: "relay".into(),
            password: None,
            client_id: "cloud-relay".into(),
            command_expiry_secs: 600,
            telemetry_retention_hours: 48,
            keep_alive_secs: 10,
            ca_pem: None,
        }
    }
}

/// Where to connect, parsed from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS with the broker's certificate and host name verified.
    pub tls: bool,
}

impl MqttConfig {
    pub fn apply_env(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(url) = lookup("MQTT_URL") {
            self.url = Some(url.trim().to_owned()).filter(|url| !url.is_empty());
        }
        if let Some(user) = lookup("MQTT_USERNAME") {
            self.username = user;
        }
        if let Some(path) = lookup("MQTT_PASSWORD_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Env {
                name: "MQTT_PASSWORD_FILE",
                reason: format!("cannot read {path}: {error}"),
            })?;
            self.password = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(password) = lookup("MQTT_PASSWORD") {
            self.password = Some(SecretString::from(password));
        }
        Ok(())
    }

    /// Whether the fleet channel is on (`url` set).
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    pub fn command_expiry(&self) -> Duration {
        Duration::from_secs(u64::from(self.command_expiry_secs))
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(u64::from(self.keep_alive_secs))
    }

    /// Host and port of `url` (`None` when unset).
    pub fn address(&self) -> Result<Option<BrokerAddress>, ConfigError> {
        self.url.as_deref().map(parse_url).transpose()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let invalid = |reason: String| Err(ConfigError::Invalid(reason));
        let Some(address) = self.address()? else {
            return Ok(());
        };
        kitchen_daemon::links::check_mqtt_link("MQTT_URL", &address.host, address.tls)
            .map_err(ConfigError::Invalid)?;
        if self.username.is_empty() {
            return invalid("[mqtt] username must not be empty".into());
        }
        if self
            .password
            .as_ref()
            .is_none_or(|password| password.expose_secret().is_empty())
        {
            return invalid(
                "MQTT_URL is set: MQTT_PASSWORD (or MQTT_PASSWORD_FILE, or the mqtt_password \
                 credential) is required"
                    .into(),
            );
        }
        if self.client_id.is_empty()
            || self.client_id.len() > 40
            || !self
                .client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(format!(
                "[mqtt] client_id {:?} must be 1 to 40 letters, digits, '-' or '_'",
                self.client_id
            ));
        }
        if self.command_expiry_secs == 0 {
            return invalid("[mqtt] command_expiry_secs must be at least 1".into());
        }
        if self.telemetry_retention_hours == 0 {
            return invalid("[mqtt] telemetry_retention_hours must be at least 1".into());
        }
        if !(2..=300).contains(&self.keep_alive_secs) {
            return invalid(format!(
                "[mqtt] keep_alive_secs must be between 2 and 300, not {}",
                self.keep_alive_secs
            ));
        }
        Ok(())
    }
}

/// `mqtts://host[:port]` (8883 by default) or `mqtt://host[:port]` (also `tcp://`; 1883); no
/// credentials in the URL (they are keys of their own). The TLS rule is checked in `validate`.
fn parse_url(url: &str) -> Result<BrokerAddress, ConfigError> {
    let invalid = |reason: &str| {
        Err(ConfigError::Invalid(format!(
            "MQTT_URL {url:?} is invalid: {reason}"
        )))
    };
    let (rest, tls) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, true),
        None => match url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            Some(rest) => (rest, false),
            None => return invalid("it must start with mqtts:// (or mqtt:// to this machine)"),
        },
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return invalid("put the user name in [mqtt] username and the password in MQTT_PASSWORD");
    }
    if rest.contains('/') || rest.contains('?') {
        return invalid("it must be mqtts://host:port with no path");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            match port.parse::<u16>() {
                Ok(port) if port > 0 => (host, port),
                _ => return invalid("the port must be a number from 1 to 65535"),
            }
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return invalid("it names no host");
    }
    Ok(BrokerAddress {
        host: host.to_owned(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_host_and_port() {
        let ok = |url: &str, host: &str, port, tls| {
            assert_eq!(
                parse_url(url).expect(url),
                BrokerAddress {
                    host: host.into(),
                    port,
                    tls
                }
            )
        };
        ok("mqtt://127.0.0.1:1884", "127.0.0.1", 1884, false);
        ok(
            "mqtt://broker.example.com",
            "broker.example.com",
            1883,
            false,
        );
        ok("tcp://broker:1883/", "broker", 1883, false);
        ok("mqtt://[::1]:1883", "::1", 1883, false);
        ok(
            "mqtts://broker.example.com",
            "broker.example.com",
            8883,
            true,
        );
        ok("mqtts://broker:18883/", "broker", 18883, true);
        for bad in [
            "http://broker:1883",
            "ssl://broker:8883",
            "mqtts://",
            "mqtt://",
            "mqtt://host:0",
            "mqtt://host:port",
            "mqtt://user:pw@host:1883",
            "mqtt://host:1883/path",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_needs_a_password_and_sane_values() {
        let mut config = MqttConfig::default();
        config.validate().expect("off is valid");
        config.url = Some("mqtt://127.0.0.1:1883".into());
        let error = config.validate().expect_err("no password");
        assert!(error.to_string().contains("MQTT_PASSWORD"), "{error}");
        config.password = Some(SecretString::from("pw"));
        config.validate().expect("valid");
        config.client_id = "relay/1".into();
        assert!(config.validate().is_err());
        config.client_id = "relay-1".into();
        config.keep_alive_secs = 1;
        assert!(config.validate().is_err());
        config.keep_alive_secs = 10;
        config.command_expiry_secs = 0;
        assert!(config.validate().is_err());
        config.command_expiry_secs = 600;
        config.url = Some("mqtt://fleet.example.com".into());
        assert_eq!(
            config
                .validate()
                .expect_err("plaintext off the machine")
                .to_string(),
            "invalid config: MQTT_URL: plaintext mqtt:// to fleet.example.com is refused: \
             a link off the box must use mqtts:// (TLS with the broker's certificate verified); \
             mqtt:// is allowed to 127.0.0.0/8, ::1 or localhost only"
        );
        config.url = Some("mqtts://fleet.example.com".into());
        config.validate().expect("TLS off the machine");
    }
}
