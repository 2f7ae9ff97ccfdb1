//! The links that leave the box and their TLS (docs/security.md, "TLS off the box"): the broker
//! (`amqp_url`) must be `amqps` and PostgreSQL (`database_url`) `sslmode=verify-full` unless the
//! host is loopback (`kitchen_daemon::links`), and so must the fleet channel (`mqtt_url`,
//! `mqtts`). The verified links trust the web PKI roots compiled in plus the CA bundle `ca_file` (default `/etc/edge-agent/ca.pem`, used when it exists), which
//! provisioning writes from `kitchen.toml`'s `ca_pem`.
//!
//! A refused link is not fatal: the agent serves the LAN without it and says why on
//! `/api/status` and the displays; `check-config` exits 1 naming the key.

use std::path::{Path, PathBuf};

use sqlx::postgres::PgConnectOptions;

use super::{Config, ConfigError};

/// Where provisioning puts the CA bundle, and where the agent looks for one by default.
pub const DEFAULT_CA_FILE: &str = "/etc/edge-agent/ca.pem";

pub use kitchen_daemon::links::{CaBundle, parse_ca_pem};

/// The links this config opens, each checked: what to connect with, or why not.
pub struct Links {
    /// The broker link: `Ok` to connect (with `ca_pem`), or why it is refused.
    pub amqp: Result<(), String>,
    /// The database link (none without a database URL): the options to connect with (the CA
    /// bundle added), or why it is refused.
    pub database: Option<Result<PgConnectOptions, String>>,
    /// The fleet channel (none without `mqtt_url`): `Ok` to connect, or why it is refused.
    pub mqtt: Option<Result<(), String>>,
    /// The CA bundle the verified links trust beside the web PKI roots.
    pub ca: Option<CaBundle>,
}

/// Without the connect options: sqlx's own `Debug` would print the database password.
impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("amqp", &self.amqp)
            .field(
                "database",
                &self
                    .database
                    .as_ref()
                    .map(|d| d.as_ref().map(|_| "<options>")),
            )
            .field("mqtt", &self.mqtt)
            .field("ca", &self.ca.as_ref().map(|ca| ca.certificates))
            .finish()
    }
}

impl Links {
    /// Every refusal: broker, database, fleet channel.
    pub fn refusals(&self) -> Vec<String> {
        let database = self.database.as_ref().and_then(|d| d.as_ref().err());
        let mqtt = self.mqtt.as_ref().and_then(|m| m.as_ref().err());
        self.amqp
            .as_ref()
            .err()
            .into_iter()
            .chain(database)
            .chain(mqtt)
            .cloned()
            .collect()
    }

    /// The CA bundle's PEM, for the broker link.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(|ca| ca.pem.clone())
    }
}

impl Config {
    /// The CA bundle file to read: `ca_file` (default [`DEFAULT_CA_FILE`], used only when it
    /// exists; an empty `AGENT_CA_FILE` means none).
    fn ca_path(&self) -> Option<&Path> {
        let path = self
            .ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())?;
        (path != Path::new(DEFAULT_CA_FILE) || path.exists()).then_some(path)
    }

    /// The CA bundle, read and parsed; the error names the key and the file.
    pub fn ca_bundle(&self) -> Result<Option<CaBundle>, String> {
        let Some(path) = self.ca_path() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("ca_file {}: {error}", path.display()))?;
        parse_ca_pem(&text)
            .map(Some)
            .map_err(|reason| format!("ca_file {}: {reason}", path.display()))
    }

    /// The broker, database and fleet links checked against the TLS rule, with the CA bundle. Only an
    /// unreadable `database_url_file` is an error (as before); a refused link or a bad CA
    /// bundle is a refusal in [`Links`], so the agent still serves the LAN.
    pub fn links(&self) -> Result<Links, ConfigError> {
        let (ca, ca_error) = match self.ca_bundle() {
            Ok(ca) => (ca, None),
            Err(reason) => (None, Some(reason)),
        };
        let with_ca = |result: Result<(), String>| match (&ca_error, result) {
            (_, Err(reason)) => Err(reason),
            (Some(reason), Ok(())) => Err(format!("{reason}: not connecting until it is fixed")),
            (None, Ok(())) => Ok(()),
        };
        let amqp = with_ca(kitchen_daemon::links::check_amqp_url(
            "amqp_url",
            &self.amqp_url,
        ));
        let key = if self.database_url.is_some() {
            "database_url"
        } else {
            "database_url_file"
        };
        let database = self.sync_database_url()?.map(|url| {
            let options = kitchen_cloud_schema::connect::checked_options(key, &url)?;
            with_ca(Ok(()))?;
            Ok(match &ca {
                Some(ca) => options.ssl_root_cert_from_pem(ca.pem.clone().into_bytes()),
                None => options,
            })
        });
        // The URL's form was checked with the config; only the TLS rule is left to apply.
        let mqtt = self.mqtt_url.as_deref().map(|url| {
            let url = super::parse_mqtt_url(url)?;
            with_ca(kitchen_daemon::links::check_mqtt_link(
                "mqtt_url", &url.host, url.tls,
            ))
        });
        Ok(Links {
            amqp,
            database,
            mqtt,
            ca,
        })
    }
}

/// `AGENT_CA_FILE`: a path, or empty for no bundle at all.
pub(super) fn ca_file_from_env(value: &str) -> Option<PathBuf> {
    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_links_name_their_key_and_never_the_password() {
        let config = Config {
            amqp_url: "amqp://k:s3cret@10.1.2.3:5672/%2f".into(),
            database_url: Some("postgres://k:s3cret@10.1.2.3/kitchen?sslmode=prefer".into()),
            mqtt_url: Some("mqtt://fleet.example.com".into()),
            kitchen_id: "bk-01".into(),
            ca_file: None,
            ..Config::default()
        };
        let links = config.links().expect("read");
        let refusals = links.refusals();
        assert_eq!(refusals.len(), 3, "{refusals:?}");
        assert!(refusals[0].starts_with("amqp_url: plaintext amqp:// to 10.1.2.3 is refused"));
        assert!(refusals[1].starts_with("database_url: sslmode=prefer to 10.1.2.3 is refused"));
        assert_eq!(
            refusals[2],
            "mqtt_url: plaintext mqtt:// to fleet.example.com is refused: a link off the box must \
             use mqtts:// (TLS with the broker's certificate verified); mqtt:// is allowed to \
             127.0.0.0/8, ::1 or localhost only"
        );
        assert!(!refusals.concat().contains("s3cret"));
        let local = Config {
            ca_file: None,
            database_url: Some("postgres://k:pw@127.0.0.1/kitchen".into()),
            mqtt_url: Some("mqtt://localhost:1884".into()),
            kitchen_id: "bk-01".into(),
            ..Config::default()
        };
        let links = local.links().expect("read");
        assert_eq!(links.refusals(), Vec::<String>::new());
        assert_eq!(links.mqtt, Some(Ok(())));
        let tls = Config {
            mqtt_url: Some("mqtts://fleet.example.com".into()),
            ..local.clone()
        };
        assert_eq!(tls.links().expect("read").mqtt, Some(Ok(())));
        assert!(!format!("{links:?}").contains("pw"), "{links:?}");
    }

    #[test]
    fn a_missing_default_ca_file_is_no_bundle_but_a_named_one_must_exist() {
        let default = Config {
            ca_file: Some(PathBuf::from(DEFAULT_CA_FILE)),
            ..Config::default()
        };
        if !Path::new(DEFAULT_CA_FILE).exists() {
            assert_eq!(default.ca_bundle(), Ok(None));
        }
        let named = Config {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            amqp_url: "amqps://k:pw@broker.example.com/%2f".into(),
            ..Config::default()
        };
        let error = named.ca_bundle().expect_err("missing");
        assert!(
            error.starts_with("ca_file /nonexistent/ca.pem: "),
            "{error}"
        );
        let links = named.links().expect("read");
        assert_eq!(
            links.amqp,
            Err(format!("{error}: not connecting until it is fixed"))
        );
    }
}
