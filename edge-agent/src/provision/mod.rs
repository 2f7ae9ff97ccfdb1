//! First-boot provisioning without a keyboard (`edge-agent provision`, run as root by
//! `edge-agent-provision.service` before the agent starts): a `kitchen.toml` that somebody put
//! on the SD card's FAT boot partition is checked as the agent would load it, then its keys go
//! into the agent's config file, its secrets into systemd's credential store (encrypted,
//! `credstore`), and the hostname is set from the kitchen id; the file is then overwritten and
//! deleted from the card (anyone holding the card can read FAT). A file that is refused changes
//! nothing on the box: the reason goes to the agent's `provision_error_file`, which its display
//! and `/api/status` show, the file is overwritten and deleted all the same (it may hold
//! secrets), and the agent keeps running as it was (not provisioned, on a new box).
//!
//! `kitchen.toml` holds any agent config keys (docs/agent.md), at least `kitchen_id` and
//! `store_ids`, plus `hostname` (optional; default `kitchen-<kitchen_id>`). The keys in
//! `config::CREDENTIALS` are secrets: they go to the credential store as `edge-agent.<key>`,
//! never into the config file or an error message. The card should carry only `enrol_token`
//! (with `enrol_url`): the one-time token `edge-agent enrol` exchanges at the relay for the
//! kitchen's credentials (`crate::enrol`); `amqp_url`, `database_url`, `mqtt_password` on the
//! card still work, for a lab without a relay.
//! `ca_pem` (optional) is the PEM bundle of the CA that signed the relay's, broker's and
//! PostgreSQL's certificates: checked (at least one certificate, each parsing), then written to
//! `ca_file` (`/etc/edge-agent/ca.pem`), where the agent looks for it. The links must follow the
//! TLS rule (`amqps`, `sslmode=verify-full`, `https` off the box) or the whole file is refused.

pub mod credstore;
mod files;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use files::{is_zone_file, link_atomic, read_error, remove, scrub, write_atomic};

pub use credstore::CredStore;

use crate::config::{CREDENTIALS, Config};
use kitchen_proto::reference::Reference;

/// Where provisioning reads and writes; the defaults are the image's paths.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The file on the boot partition (`/boot/firmware/kitchen.toml`).
    pub source: PathBuf,
    /// The agent config file to update (`/etc/edge-agent/agent.toml`).
    pub config_file: PathBuf,
    /// systemd's credential store (`/etc/credstore.encrypted`, through `systemd-creds`): the
    /// units load `edge-agent.<key>` from it.
    pub credstore: CredStore,
    /// Holds `hostname` and `hosts` (`/etc`).
    pub etc: PathBuf,
    /// Where `kitchen.toml`'s `ca_pem` goes (`/etc/edge-agent/ca.pem`, the agent's default
    /// `ca_file`).
    pub ca_file: PathBuf,
    /// The time zone database (`/usr/share/zoneinfo`, Debian's `tzdata`): `time_zone` must
    /// name a zone in it, and `etc/localtime` links to it.
    pub zoneinfo: PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `kitchen.toml`: the box keeps the configuration it has.
    NothingToDo,
    Provisioned {
        kitchen_id: String,
        stores: usize,
        hostname: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// The file was refused; the reason never quotes a secret.
    #[error("kitchen.toml refused: {0}")]
    Invalid(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// What a valid `kitchen.toml` turns into.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The new agent config file (the current one with the kitchen's keys set), secrets left out.
    pub config_text: String,
    /// Credential name → value.
    pub credentials: Vec<(&'static str, String)>,
    pub hostname: String,
    pub kitchen_id: String,
    pub stores: usize,
    /// The reference file the config names, to check it loads.
    pub reference_file: Option<PathBuf>,
    /// The CA bundle (`ca_pem`), checked, to write to `ca_file`.
    pub ca_pem: Option<String>,
    /// The kitchen's time zone (`time_zone`, e.g. `Europe/London`): use-by days, day parts
    /// and the end of the day turn at its midnight, not UTC's.
    pub time_zone: Option<String>,
}

/// What `edge-agent check-config` prints for a loaded config, after the checks `run` cannot
/// make at load time: the broker URL parses, the links off the box use verified TLS and the CA
/// bundle parses (with `check_links`; without, the unit's `--skip-links`, a refused link is
/// named in the summary: the agent runs without it), and (with `check_reference`) the
/// reference file loads. The URL itself is never shown: it holds the password.
pub fn check_config(
    config: &Config,
    check_reference: bool,
    check_links: bool,
) -> Result<String, String> {
    let mut parts = vec![
        format!("listen {}", config.listen),
        format!("data {}", config.data_dir.display()),
    ];
    if config.provisioned() {
        check_kitchen_id(&config.kitchen_id)?;
        if config.amqp_url.parse::<lapin::uri::AMQPUri>().is_err() {
            return Err(AMQP_URL_EXPECTED.into());
        }
        parts.push(format!(
            "kitchen {} ({} stores)",
            config.kitchen_id,
            config.store_ids.len()
        ));
    } else {
        parts.push("not provisioned (no kitchen_id/store_ids)".into());
    }
    let links = config.links().map_err(|error| error.to_string())?;
    let mut refusals = links.refusals();
    if let Some(url) = &config.enrol_url
        && let Err(reason) = crate::enrol::check_url(url)
    {
        refusals.push(reason);
    }
    if !config.provisioned() {
        // Without a kitchen the feed never connects: only the database link matters.
        refusals.retain(|reason| !reason.starts_with("amqp_url"));
    }
    if check_links && let Some(reason) = refusals.first() {
        return Err(reason.clone());
    }
    match &config.reference_file {
        Some(file) if check_reference => {
            let reference = Reference::load(file).map_err(|error| error.to_string())?;
            parts.push(format!(
                "reference {} ({} stations, {} items)",
                file.display(),
                reference.stations.len(),
                reference.items.len()
            ));
        }
        Some(file) => parts.push(format!("reference {} (not checked)", file.display())),
        None => parts.push("no reference file".into()),
    }
    match config.mqtt_target().map_err(|error| error.to_string())? {
        Some(target) => parts.push(format!(
            "fleet channel {}://{}@{}:{}{}",
            if target.tls { "mqtts" } else { "mqtt" },
            target.username,
            target.host,
            target.port,
            if target.password.is_some() {
                ""
            } else {
                " (no password)"
            }
        )),
        None => parts.push("no fleet channel".into()),
    }
    parts.push(match &links.ca {
        Some(ca) => format!("ca bundle ({} certificates)", ca.certificates),
        None => "no ca bundle".into(),
    });
    if !refusals.is_empty() {
        parts.push(format!(
            "links refused (the agent runs without them): {}",
            refusals.join("; ")
        ));
    }
    if !config.printers.is_empty() {
        let names: Vec<&str> = config.printers.iter().map(|p| p.name.as_str()).collect();
        parts.push(format!("printers {}", names.join(", ")));
    }
    parts.push(format!("{} scanners", config.scanners.len()));
    Ok(format!("config ok: {}", parts.join(", ")))
}

/// The parser's message may quote the URL, password and all: say what is expected instead.
const AMQP_URL_EXPECTED: &str =
    "amqp_url is not an AMQP URL (amqp[s]://user:password@host[:port]/vhost)";

/// Pure: the `kitchen.toml` text and the current config file's text (if any) → what to write.
pub fn plan(kitchen_toml: &str, current_config: Option<&str>) -> Result<Plan, String> {
    let mut kitchen = parse_table(kitchen_toml, "kitchen.toml")?;
    let mut merged = match current_config {
        Some(text) => parse_table(text, "the current agent config")?,
        None => toml::Table::new(),
    };
    let hostname = match kitchen.remove("hostname") {
        None => None,
        Some(toml::Value::String(name)) => Some(name),
        Some(_) => return Err("hostname must be a string".into()),
    };
    let mut credentials = Vec::new();
    for (name, _) in CREDENTIALS {
        match kitchen.remove(*name) {
            None => {}
            Some(toml::Value::String(value)) if !value.trim().is_empty() => {
                credentials.push((*name, value.trim().to_owned()));
            }
            Some(_) => return Err(format!("{name} must be a non-empty string")),
        }
    }
    let time_zone = match kitchen.remove("time_zone") {
        None => None,
        Some(toml::Value::String(zone)) => {
            check_time_zone(&zone)?;
            Some(zone)
        }
        Some(_) => return Err("time_zone must be a string (e.g. \"Europe/London\")".into()),
    };
    let ca_pem = match kitchen.remove("ca_pem") {
        None => None,
        Some(toml::Value::String(pem)) => {
            crate::config::parse_ca_pem(&pem).map_err(|reason| format!("ca_pem: {reason}"))?;
            Some(pem)
        }
        Some(_) => return Err("ca_pem must be a string (the PEM text)".into()),
    };
    for (key, value) in kitchen {
        merged.insert(key, value);
    }
    let mut config: Config = toml::Value::Table(merged.clone())
        .try_into()
        .map_err(|error: toml::de::Error| error.message().to_owned())?;
    for (name, value) in &credentials {
        if let Some((_, set)) = CREDENTIALS.iter().find(|(known, _)| known == name) {
            set(&mut config, value.clone());
        }
    }
    config.validate().map_err(|error| error.to_string())?;
    if !config.provisioned() {
        return Err("kitchen_id and store_ids must both be set".into());
    }
    check_kitchen_id(&config.kitchen_id)?;
    if config.amqp_url.parse::<lapin::uri::AMQPUri>().is_err() {
        return Err(AMQP_URL_EXPECTED.into());
    }
    match (&config.enrol_url, &config.enrol_token) {
        (Some(url), Some(_)) => crate::enrol::check_url(url)?,
        (None, Some(_)) => {
            return Err("enrol_token needs enrol_url (the relay's https://…/enrol)".into());
        }
        (_, None) => {}
    }
    // The links as the agent would refuse them (the CA bundle is checked above, not read).
    kitchen_daemon::links::check_amqp_url("amqp_url", &config.amqp_url)?;
    if let Some(url) = &config.database_url {
        kitchen_cloud_schema::connect::checked_options("database_url", url)?;
    }
    if let Some(url) = &config.mqtt_url {
        let url = crate::config::parse_mqtt_url(url)?;
        kitchen_daemon::links::check_mqtt_link("mqtt_url", &url.host, url.tls)?;
    }
    let hostname = match hostname {
        Some(name) => {
            check_hostname(&name)?;
            name
        }
        None => hostname_for(&config.kitchen_id),
    };
    let body = toml::to_string(&merged).map_err(|error| error.to_string())?;
    let config_text = format!(
        "# Written by `edge-agent provision` from the kitchen.toml on the boot partition.\n\
         # Secrets are in /etc/credstore.encrypted/edge-agent.* (LoadCredentialEncrypted=), not here.\n\n\
         {body}"
    );
    Ok(Plan {
        config_text,
        credentials,
        hostname,
        kitchen_id: config.kitchen_id,
        stores: config.store_ids.len(),
        reference_file: config.reference_file,
        ca_pem,
        time_zone,
    })
}

/// A time zone name as the tz database spells them (`Europe/London`, `America/Port-au-Prince`,
/// `Etc/GMT+5`, `UTC`): nothing that could leave the database's directory.
fn check_time_zone(zone: &str) -> Result<(), String> {
    let fits = !zone.is_empty()
        && zone.len() <= 64
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
        });
    if fits {
        Ok(())
    } else {
        Err(format!(
            "time_zone {zone:?} is not a time zone name (like \"Europe/London\")"
        ))
    }
}

/// Parses TOML, reporting the line and the parser's message but never the quoted line (which
/// could be the one holding the password).
fn parse_table(text: &str, what: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>().map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = error.message().trim_end();
        match line {
            Some(line) => format!("{what} line {line}: {message}"),
            None => format!("{what}: {message}"),
        }
    })
}

/// The queue is `edge.<kitchen_id>` and the hostname derives from it: keep it plain.
fn check_kitchen_id(id: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.len() > 64 || !id.chars().all(plain) {
        return Err(format!(
            "kitchen_id {id:?} must be 1–64 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// An RFC 1123 host name label: 1–63 of a–z, 0–9 and '-', not starting or ending with '-'.
fn check_hostname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "hostname {name:?} must be 1–63 of a-z, 0-9 and '-', not starting or ending with '-'"
        ))
    }
}

/// `kitchen-<kitchen id>`, lower-cased, other characters as '-', cut to 63.
pub fn hostname_for(kitchen_id: &str) -> String {
    let mapped: String = format!("kitchen-{kitchen_id}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(63)
        .collect();
    mapped.trim_end_matches('-').to_owned()
}

impl Provision {
    /// The image's paths.
    pub fn standard(config_file: PathBuf) -> Self {
        Self {
            source: PathBuf::from("/boot/firmware/kitchen.toml"),
            config_file,
            credstore: CredStore::standard(),
            etc: PathBuf::from("/etc"),
            ca_file: PathBuf::from(crate::config::DEFAULT_CA_FILE),
            zoneinfo: PathBuf::from("/usr/share/zoneinfo"),
        }
    }

    /// Applies `source` if there is one. A refused file is recorded in the error file (see
    /// `error_file`) and changes nothing else; an applied one clears that record.
    pub fn run(&self) -> Result<Outcome, ProvisionError> {
        let kitchen_toml = match std::fs::read_to_string(&self.source) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Outcome::NothingToDo);
            }
            Err(error) => return Err(read_error(&self.source, &error)),
        };
        let current = match std::fs::read_to_string(&self.config_file) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(read_error(&self.config_file, &error)),
        };
        let error_file = self.error_file(current.as_deref());
        let checked = plan(&kitchen_toml, current.as_deref()).and_then(|plan| {
            if let Some(file) = &plan.reference_file {
                Reference::load(file).map_err(|error| error.to_string())?;
            }
            if let Some(zone) = &plan.time_zone
                && !is_zone_file(&self.zoneinfo.join(zone))
            {
                return Err(format!(
                    "time_zone {zone:?} is not in the time zone database ({})",
                    self.zoneinfo.display()
                ));
            }
            Ok(plan)
        });
        let plan = match checked {
            Ok(plan) => plan,
            Err(reason) => {
                // The reason is kept for the display; the file goes, secrets and all: a card
                // that left the box with a refused file on it would still carry them.
                write_atomic(&error_file, format!("{reason}\n").as_bytes(), 0o644)?;
                scrub(&self.source)?;
                remove(&self.source)?;
                return Err(ProvisionError::Invalid(reason));
            }
        };
        let legacy = CredStore::Plaintext {
            dir: self.etc.join("credstore"),
        };
        for (name, value) in &plan.credentials {
            self.credstore.write(name, value)?;
            // Where an earlier version put the secret in plaintext: gone once it is sealed.
            if legacy != self.credstore {
                legacy.remove(name)?;
            }
        }
        if let Some(pem) = &plan.ca_pem {
            // Public certificates, not secrets: readable by the agent's dynamic user.
            write_atomic(&self.ca_file, pem.as_bytes(), 0o644)?;
        }
        write_atomic(&self.config_file, plan.config_text.as_bytes(), 0o644)?;
        if let Some(zone) = &plan.time_zone {
            // What `timedatectl set-timezone` does: the link, and Debian's name file.
            link_atomic(&self.etc.join("localtime"), &self.zoneinfo.join(zone))?;
            write_atomic(
                &self.etc.join("timezone"),
                format!("{zone}\n").as_bytes(),
                0o644,
            )?;
        }
        write_atomic(
            &self.etc.join("hostname"),
            format!("{}\n", plan.hostname).as_bytes(),
            0o644,
        )?;
        let hosts_path = self.etc.join("hosts");
        let hosts = std::fs::read_to_string(&hosts_path).unwrap_or_default();
        write_atomic(
            &hosts_path,
            with_host(&hosts, &plan.hostname).as_bytes(),
            0o644,
        )?;
        // The secrets are safe in the credential store now: take them off the card, overwritten
        // first (an unlink on FAT leaves the data in free clusters, recoverable).
        scrub(&self.source)?;
        remove(&self.source)?;
        remove(&error_file)?;
        Ok(Outcome::Provisioned {
            kitchen_id: plan.kitchen_id,
            stores: plan.stores,
            hostname: plan.hostname,
        })
    }

    /// The current config's `provision_error_file`, else `provision-error` beside the config.
    fn error_file(&self, current_config: Option<&str>) -> PathBuf {
        current_config
            .and_then(|text| toml::from_str::<Config>(text).ok())
            .and_then(|config| config.provision_error_file)
            .unwrap_or_else(|| {
                self.config_file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("provision-error")
            })
    }
}

/// `/etc/hosts` with `127.0.1.1` naming `hostname` (Debian's convention), other lines kept.
fn with_host(hosts: &str, hostname: &str) -> String {
    let entry = format!("127.0.1.1\t{hostname}");
    let mut lines: Vec<String> = hosts
        .lines()
        .filter(|line| !line.starts_with("127.0.1.1"))
        .map(str::to_owned)
        .collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with("127.0.0.1"))
        .map_or(lines.len(), |i| i + 1);
    lines.insert(at, entry);
    lines.join("\n") + "\n"
}
