//! The fleet channel's keys (docs/fleet.md): `mqtt_url` (`mqtt://[user@]host[:port]`, the user
//! name being the kitchen id unless the URL names one) and its password from `mqtt_password`,
//! `mqtt_password_file` or the `mqtt_password` credential.

use super::{Config, ConfigError};

/// Where and as whom the box connects to the MQTT broker.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttTarget {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for MqttTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What an MQTT URL must look like; the parser's complaint never quotes the URL.
pub const MQTT_URL_EXPECTED: &str = "mqtt_url must be mqtt://[user@]host[:port] \
     (mqtts:// arrives with TLS in a later release; the password goes in mqtt_password)";

/// `mqtt://[user@]host[:port][/]` → (host, port, user).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16, Option<String>), String> {
    let url = url.trim();
    let Some(rest) = url.strip_prefix("mqtt://") else {
        return Err(if url.starts_with("mqtts://") {
            "mqtt_url: mqtts:// (TLS) is not supported yet — it comes with a later TLS release; \
             use mqtt:// on a trusted network or a tunnel"
                .to_owned()
        } else {
            MQTT_URL_EXPECTED.to_owned()
        });
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
        None => 1883,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(MQTT_URL_EXPECTED.to_owned());
    }
    Ok((host.to_owned(), port, user))
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
        let (host, port, user) = parse_mqtt_url(url).map_err(invalid)?;
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
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_refused_with_the_reason() {
        assert_eq!(
            parse_mqtt_url("mqtt://broker.example.com"),
            Ok(("broker.example.com".into(), 1883, None))
        );
        assert_eq!(
            parse_mqtt_url(" mqtt://bk-01@10.0.0.5:1884/ "),
            Ok(("10.0.0.5".into(), 1884, Some("bk-01".into())))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://[::1]:1883"),
            Ok(("::1".into(), 1883, None))
        );
        let refused = |url: &str| parse_mqtt_url(url).expect_err(url);
        assert!(refused("mqtts://broker:8883").contains("later TLS release"));
        assert!(refused("tcp://broker").starts_with("mqtt_url must be mqtt://"));
        assert!(refused("mqtt://bk:s3cret@broker").contains("must not hold a password"));
        assert!(!refused("mqtt://bk:s3cret@broker").contains("s3cret"));
        assert!(refused("mqtt://broker:99999").starts_with("mqtt_url must be"));
        assert!(refused("mqtt://broker/topic").starts_with("mqtt_url must be"));
        assert!(refused("mqtt://").starts_with("mqtt_url must be"));
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
        assert!(!format!("{target:?}").contains("pw\""));
        config.mqtt_url = Some("mqtt://box-7@broker".into());
        let target = config.mqtt_target().expect("valid").expect("set");
        assert_eq!(target.username, "box-7");
        config.mqtt_url = None;
        assert_eq!(config.mqtt_target().expect("valid"), None);
    }
}
