//! The fleet channel (docs/fleet.md): MQTT 5 between every kitchen box and the relays.
//! `subscriber` (the one relay holding the election lock) writes presence, telemetry and
//! replies into PostgreSQL and acknowledges each message only after its commit; `command`
//! publishes commands (any relay); `store` is the SQL; `payload` the JSON; `passwd` the
//! Mosquitto password file; `operators` the fleet page's tokens; `page` and `events` the page
//! on the admin listener; `metrics` the `relay_fleet_*` counters.

pub mod cli;
pub mod command;
pub mod events;
pub mod metrics;
pub mod operators;
pub mod page;
pub mod passwd;
pub mod payload;
pub mod store;
pub mod subscriber;

use std::time::Duration;

use rumqttc::{NetworkOptions, TlsConfiguration, Transport, v5::MqttOptions};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, MqttConfig};

pub use command::{CommandError, Commander};
pub use metrics::FleetMetrics;

/// The NOTIFY channel every change to a kitchen's fleet state is announced on.
pub const CHANNEL: &str = "fleet";
/// The commands a box knows (docs/fleet.md); the page offers a button for each.
pub const COMMANDS: [&str; 5] = ["ping", "reference", "reconcile", "sync", "diagnostics"];
/// Largest MQTT packet the relay accepts or sends (diagnostics replies carry 50 log lines;
/// rumqttc's default is 10 KiB).
pub const MAX_PACKET_BYTES: u32 = 1024 * 1024;
/// How long connecting to the broker (TCP + CONNACK) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a topic under `kitchens/` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic<'a> {
    Presence { kitchen: &'a str },
    Telemetry { kitchen: &'a str },
    Reply { kitchen: &'a str, id: &'a str },
}

/// Parses `kitchens/<k>/presence`, `kitchens/<k>/telemetry`, `kitchens/<k>/replies/<id>`.
pub fn parse_topic(topic: &str) -> Option<Topic<'_>> {
    let rest = topic.strip_prefix("kitchens/")?;
    let mut parts = rest.split('/');
    let kitchen = parts.next().filter(|kitchen| !kitchen.is_empty())?;
    let topic = match (parts.next()?, parts.next(), parts.next()) {
        ("presence", None, None) => Topic::Presence { kitchen },
        ("telemetry", None, None) => Topic::Telemetry { kitchen },
        ("replies", Some(id), None) if !id.is_empty() => Topic::Reply { kitchen, id },
        _ => return None,
    };
    Some(topic)
}

/// Why a kitchen id cannot be an MQTT user name and topic level, or `None` when it can.
pub fn unfit_for_mqtt(kitchen_id: &str) -> Option<&'static str> {
    if kitchen_id.is_empty() {
        Some("it is empty")
    } else if kitchen_id.contains(['/', '+', '#']) {
        Some("it holds '/', '+' or '#', which MQTT topics reserve")
    } else if kitchen_id.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if kitchen_id.len() > 200 {
        Some("it is longer than 200 bytes")
    } else {
        None
    }
}

/// The commands topic of `kitchen`.
pub fn command_topic(kitchen: &str, name: &str) -> String {
    format!("kitchens/{kitchen}/commands/{name}")
}

/// The reply topic of command `id` to `kitchen`.
pub fn reply_topic(kitchen: &str, id: &str) -> String {
    format!("kitchens/{kitchen}/replies/{id}")
}

/// Options shared by the relay's MQTT connections: the configured broker and login, keep-alive,
/// a raised packet limit, TCP_NODELAY, MQTT 5.
pub fn options(config: &MqttConfig, client_id: String) -> Result<MqttOptions, ConfigError> {
    let address = config
        .address()?
        .ok_or_else(|| ConfigError::Invalid("MQTT_URL is not set".into()))?;
    let mut options = MqttOptions::new(client_id, address.host, address.port);
    // rumqttc leaves Nagle on: small acks and commands would wait ~40 ms for delayed ACKs.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    if address.tls {
        let tls = kitchen_daemon::links::tls_client_config(config.ca_pem.as_deref())
            .map_err(ConfigError::Invalid)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    options
        .set_keep_alive(config.keep_alive())
        .set_max_packet_size(Some(MAX_PACKET_BYTES))
        .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    let password = config
        .password
        .as_ref()
        .map(|password| password.expose_secret().to_owned())
        .unwrap_or_default();
    options.set_credentials(config.username.clone(), password);
    Ok(options)
}

/// Whether a SUBACK/PUBACK reason code (MQTT 5) is a success (below 0x80).
pub fn succeeded(code: u8) -> bool {
    code < 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_and_others_are_refused() {
        assert_eq!(
            parse_topic("kitchens/k1/presence"),
            Some(Topic::Presence { kitchen: "k1" })
        );
        assert_eq!(
            parse_topic("kitchens/k1/telemetry"),
            Some(Topic::Telemetry { kitchen: "k1" })
        );
        assert_eq!(
            parse_topic("kitchens/k1/replies/abc"),
            Some(Topic::Reply {
                kitchen: "k1",
                id: "abc"
            })
        );
        for bad in [
            "kitchens//presence",
            "kitchens/k1/presence/x",
            "kitchens/k1/replies/",
            "kitchens/k1/replies/a/b",
            "kitchens/k1/commands/ping",
            "other/k1/presence",
            "kitchens/k1",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }

    #[test]
    fn kitchen_ids_with_topic_characters_cannot_be_mqtt_users() {
        assert_eq!(unfit_for_mqtt("kitchen-1"), None);
        assert_eq!(unfit_for_mqtt("Küche 1"), None);
        for bad in ["", "a/b", "a+b", "a#", "a\nb"] {
            assert!(unfit_for_mqtt(bad).is_some(), "{bad:?}");
        }
    }
}
