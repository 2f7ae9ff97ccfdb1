//! The fleet channel's keys (docs/fleet.md): `mqtt_url` (`mqtts://[user@]host[:port]`, or
//! `mqtt://` to loopback; the user name being the kitchen id unless the URL names one) and its password from `mqtt_password`,
//! `mqtt_password_file` or the `mqtt_password` credential.

use super::{Config, ConfigError};

/// Where and as whom the box connects to the MQTT broker.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttTarget {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<String>,
    /// `mqtts://`: TLS with the broker's certificate verified against the CA bundle and the
    /// web PKI roots.
    pub tls: bool,
}

impl std::fmt::Debug for MqttTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// What an MQTT URL must look like; the parser's complaint never quotes the URL.
pub const MQTT_URL_EXPECTED: &str = "mqtt_url must be mqtts://[user@]host[:port] \
     (or mqtt:// to this machine; the password goes in mqtt_password)";

/// An MQTT URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    pub host: String,
    /// 8883 for `mqtts://`, 1883 for `mqtt://`, unless the URL names one.
    pub port: u16,
    pub user: Option<String>,
    pub tls: bool,
}

/// `mqtts://[user@]host[:port][/]` or `mqtt://…` (the TLS rule is checked apart, with the
/// other links: `Config::links`).
pub fn parse_mqtt_url(url: &str) -> Result<MqttUrl, String> {
    let url = url.trim();
    let (rest, tls) = match (url.strip_prefix("mqtts://"), url.strip_prefix("mqtt://")) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => return Err(MQTT_URL_EXPECTED.to_owned()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(MQTT_URL_EXPECTED.to_owned());
    }
    let (user, address) = match rest.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            return Err("mqtt_url must not hold a password: give it as mqtt_password".to_owned());
        }
        Some((user, address)) if !user.is_empty() => (Some(user.to_owned()), address),
        Some(_) => return Err(MQTT_URL_EXPECTED.to_owned()),
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| MQTT_URL_EXPECTED.to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| MQTT_URL_EXPECTED.to_owned())?,
        None if tls => 8883,
        None => 1883,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(MQTT_URL_EXPECTED.to_owned());
    }
    Ok(MqttUrl {
        host: host.to_owned(),
        port,
        user,
        tls,
    })
}

/// A kitchen id that can be an MQTT user name and one topic level.
pub fn check_mqtt_kitchen_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(
            "mqtt_url needs kitchen_id: the box logs in and publishes as its kitchen".into(),
        );
    }
    if id.contains(['/', '+', '#']) || id.chars().any(char::is_control) {
        return Err(format!(
            "kitchen_id {id:?} cannot be an MQTT topic level ('/', '+', '#' or a control \
             character): mqtt_url is refused for it"
        ));
    }
    Ok(())
}

impl Config {
    /// The keys' checks: the URL's form and a kitchen id usable as a topic level.
    pub(super) fn validate_mqtt(&self) -> Result<(), String> {
        if self.mqtt_password.is_some() && self.mqtt_password_file.is_some() {
            return Err("give mqtt_password or mqtt_password_file, not both".into());
        }
        let Some(url) = &self.mqtt_url else {
            return Ok(());
        };
        parse_mqtt_url(url)?;
        check_mqtt_kitchen_id(&self.kitchen_id)
    }

    /// The broker to connect to, with the password read (from `mqtt_password_file` if that is
    /// where it is); `None` without `mqtt_url`.
    pub fn mqtt_target(&self) -> Result<Option<MqttTarget>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { reason };
        let Some(url) = &self.mqtt_url else {
            return Ok(None);
        };
        let MqttUrl {
            host,
            port,
            user,
            tls,
        } = parse_mqtt_url(url).map_err(invalid)?;
        check_mqtt_kitchen_id(&self.kitchen_id).map_err(invalid)?;
        let password = match (&self.mqtt_password, &self.mqtt_password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| text.lines().next().map(|l| l.trim().to_owned()))
                .map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            (None, None) => None,
        };
        Ok(Some(MqttTarget {
            host,
            port,
            username: user.unwrap_or_else(|| self.kitchen_id.clone()),
            password: password.filter(|p| !p.is_empty()),
            tls,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_refused_with_the_reason() {
        let url = |host: &str, port, user: Option<&str>, tls| MqttUrl {
            host: host.into(),
            port,
            user: user.map(Into::into),
            tls,
        };
        assert_eq!(
            parse_mqtt_url("mqtts://broker.example.com"),
            Ok(url("broker.example.com", 8883, None, true))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://broker.example.com"),
            Ok(url("broker.example.com", 1883, None, false))
        );
        assert_eq!(
            parse_mqtt_url(" mqtts://bk-01@10.0.0.5:1884/ "),
            Ok(url("10.0.0.5", 1884, Some("bk-01"), true))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://[::1]:1883"),
            Ok(url("::1", 1883, None, false))
        );
        let refused = |url: &str| parse_mqtt_url(url).expect_err(url);
        assert_eq!(refused("tcp://broker"), MQTT_URL_EXPECTED);
        assert_eq!(refused("ssl://broker"), MQTT_URL_EXPECTED);
        assert!(refused("mqtts://bk:s3cret@broker").contains("must not hold a password"));
        assert!(!refused("mqtt://bk:s3cret@broker").contains("s3cret"));
        assert_eq!(refused("mqtt://broker:99999"), MQTT_URL_EXPECTED);
        assert_eq!(refused("mqtts://broker/topic"), MQTT_URL_EXPECTED);
        assert_eq!(refused("mqtt://"), MQTT_URL_EXPECTED);
    }

    #[test]
    fn a_kitchen_id_must_be_one_topic_level() {
        assert_eq!(check_mqtt_kitchen_id("bk-01"), Ok(()));
        for id in ["bk/01", "bk+", "#", "bk\n01", ""] {
            assert!(check_mqtt_kitchen_id(id).is_err(), "{id:?}");
        }
        let config = Config {
            kitchen_id: "bk/01".into(),
            mqtt_url: Some("mqtt://broker".into()),
            ..Config::default()
        };
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.contains("cannot be an MQTT topic level"), "{error}");
    }

    #[test]
    fn the_user_is_the_kitchen_unless_the_url_names_one() {
        let mut config = Config {
            kitchen_id: "bk-01".into(),
            mqtt_url: Some("mqtt://broker:1884".into()),
            mqtt_password: Some("pw".into()),
            ..Config::default()
        };
        let target = config.mqtt_target().expect("valid").expect("set");
        assert_eq!(
            (target.host.as_str(), target.port, target.username.as_str()),
            ("broker", 1884, "bk-01")
        );
        assert_eq!(target.password.as_deref(), Some("pw"));
        assert!(!target.tls);
        assert!(!format!("{target:?}").contains("pw\""));
        config.mqtt_url = Some("mqtts://box-7@broker".into());
        let target = config.mqtt_target().expect("valid").expect("set");
        assert_eq!(
            (target.username.as_str(), target.port, target.tls),
            ("box-7", 8883, true)
        );
        config.mqtt_url = None;
        assert_eq!(config.mqtt_target().expect("valid"), None);
    }
}
