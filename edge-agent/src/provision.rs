//! First-boot provisioning without a keyboard (`edge-agent provision`, run as root by
//! `edge-agent-provision.service` before the agent starts): a `kitchen.toml` that somebody put
//! on the SD card's FAT boot partition is checked as the agent would load it, then its keys go
//! into the agent's config file, its secrets into systemd's credential store, and the hostname
//! is set from the kitchen id; the file is then deleted from the card (anyone holding the card
//! can read FAT). A file that is refused changes nothing: the reason goes to the agent's
//! `provision_error_file`, which its display and `/api/status` show, and the agent keeps
//! running as it was (not provisioned, on a new box) instead of failing to start.
//!
//! `kitchen.toml` holds any agent config keys (docs/agent.md), at least `kitchen_id` and
//! `store_ids`, plus `hostname` (optional; default `kitchen-<kitchen_id>`). The keys in
//! `config::CREDENTIALS` (`amqp_url`, `database_url`: they carry passwords; `pairing_code`,
//! `mqtt_password`) are secrets: they go to
//! `<credstore>/edge-agent.<key>` (mode 0600), never into the config file or an error message.
//! `ca_pem` (optional) is the PEM bundle of the CA that signed the broker's and PostgreSQL's
//! certificates: checked (at least one certificate, each parsing), then written to `ca_file`
//! (`/etc/edge-agent/ca.pem`), where the agent looks for it. The links must follow the TLS rule
//! (`amqps`, `sslmode=verify-full` off the box) or the whole file is refused.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use crate::config::{CREDENTIALS, Config};
use kitchen_proto::reference::Reference;

/// Where provisioning reads and writes; the defaults are the image's paths.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The file on the boot partition (`/boot/firmware/kitchen.toml`).
    pub source: PathBuf,
    /// The agent config file to update (`/etc/edge-agent/agent.toml`).
    pub config_file: PathBuf,
    /// systemd's credential store (`/etc/credstore`): the unit loads `edge-agent.<key>` from it.
    pub credstore: PathBuf,
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
            "fleet channel mqtt://{}@{}:{}{}",
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
    for warning in &links.warnings {
        tracing::warn!(%warning, "plaintext link off the box");
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
    // The links as the agent would refuse them (the CA bundle is checked above, not read).
    kitchen_daemon::links::check_amqp_url("amqp_url", &config.amqp_url)?;
    if let Some(url) = &config.database_url {
        kitchen_cloud_schema::connect::checked_options("database_url", url)?;
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
         # Secrets are in /etc/credstore/edge-agent.* (loaded with LoadCredential=), not here.\n\n\
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
            credstore: PathBuf::from("/etc/credstore"),
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
                write_atomic(&error_file, format!("{reason}\n").as_bytes(), 0o644)?;
                return Err(ProvisionError::Invalid(reason));
            }
        };
        for (name, value) in &plan.credentials {
            create_private_dir(&self.credstore)?;
            let path = self.credstore.join(format!("edge-agent.{name}"));
            write_atomic(&path, format!("{value}\n").as_bytes(), 0o600)?;
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

fn read_error(path: &Path, error: &std::io::Error) -> ProvisionError {
    ProvisionError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn write_error(path: &Path, error: &std::io::Error) -> ProvisionError {
    ProvisionError::Write {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ProvisionError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| write_error(dir, &error))
}

/// Writes a sibling temporary file, syncs it, renames it over `path` and syncs the directory:
/// after a power cut the file is either the old one or the new one, never half of each.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), ProvisionError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|error| write_error(dir, &error))?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.provision"));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|error| write_error(path, &error))
}

/// Whether `path` is a compiled tz database file (its `TZif` magic).
fn is_zone_file(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"TZif")
}

/// Points the symlink `path` at `target`, replacing what is there in one rename.
fn link_atomic(path: &Path, target: &Path) -> Result<(), ProvisionError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = dir.join(".localtime.provision");
    let link = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(target, &temporary)?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    link().map_err(|error| write_error(path, &error))
}

/// Overwrites the file's bytes in place with zeros and syncs them, so its content is gone from
/// the medium before it is unlinked (FAT rewrites a file's own clusters in place).
fn scrub(path: &Path) -> Result<(), ProvisionError> {
    let overwrite = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let len = file.metadata()?.len();
        let zeros = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    };
    match overwrite() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        result => result.map_err(|error| write_error(path, &error)),
    }
}

fn remove(path: &Path) -> Result<(), ProvisionError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(write_error(path, &error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-pw";

    fn kitchen(extra: &str) -> String {
        format!(
            "kitchen_id = \"bk-01\"\nstore_ids = [\"store-a\", \"store-b\"]\n\
             amqp_url = \"amqps://bk-01:{SECRET}@broker.example.com:5671/%2f\"\n{extra}"
        )
    }

    #[test]
    fn a_valid_file_becomes_config_credentials_and_hostname() {
        let current = "listen = \"0.0.0.0:8080\"\ndata_dir = \"/var/lib/edge-agent\"\n\
                       amqp_url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n";
        let plan = plan(&kitchen("scanner_retry_ms = 500\n"), Some(current)).expect("valid");
        assert_eq!(plan.kitchen_id, "bk-01");
        assert_eq!(plan.stores, 2);
        assert_eq!(plan.hostname, "kitchen-bk-01");
        assert_eq!(
            plan.credentials,
            [(
                "amqp_url",
                format!("amqps://bk-01:{SECRET}@broker.example.com:5671/%2f")
            )]
        );
        assert!(!plan.config_text.contains(SECRET), "{}", plan.config_text);
        let written: Config = toml::from_str(&plan.config_text).expect("the agent reads it");
        assert_eq!(written.kitchen_id, "bk-01");
        assert_eq!(written.store_ids, ["store-a", "store-b"]);
        assert_eq!(written.scanner_retry_ms, 500);
        assert_eq!(written.listen.port(), 8080, "current keys are kept");
        assert_eq!(written.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");

        let named = plan_ok(&kitchen("hostname = \"fry-box\"\n"));
        assert_eq!(named.hostname, "fry-box");

        // The first manager's pairing code is a secret like the broker's password.
        let paired = plan_ok(&kitchen("pairing_code = \"ROSE-TIGER-4471\"\n"));
        assert_eq!(
            paired.credentials[1],
            ("pairing_code", "ROSE-TIGER-4471".into())
        );
        assert!(
            !paired.config_text.contains("ROSE"),
            "{}",
            paired.config_text
        );
        let short = super::plan(&kitchen("pairing_code = \"1234\"\n"), None).expect_err("short");
        assert_eq!(
            short,
            "invalid config: pairing_code must have at least 8 letters or digits"
        );
    }

    #[test]
    fn the_fleet_channel_keys_are_a_setting_and_a_secret() {
        let plan = plan_ok(&kitchen(
            "mqtt_url = \"mqtt://fleet.example.com:1883\"\nmqtt_password = \"mq-9f8e\"\n",
        ));
        assert_eq!(plan.credentials[1], ("mqtt_password", "mq-9f8e".into()));
        assert!(
            !plan.config_text.contains("mq-9f8e"),
            "{}",
            plan.config_text
        );
        let written: Config = toml::from_str(&plan.config_text).expect("the agent reads it");
        assert_eq!(
            written.mqtt_url.as_deref(),
            Some("mqtt://fleet.example.com:1883")
        );
        let refused = super::plan(&kitchen("mqtt_url = \"mqtts://fleet:8883\"\n"), None)
            .expect_err("no TLS yet");
        assert!(refused.contains("later TLS release"), "{refused}");
    }

    fn plan_ok(text: &str) -> Plan {
        plan(text, None).expect("valid")
    }

    #[test]
    fn refusals_say_why_without_the_secret() {
        let check = |text: String, expected: &str| {
            let reason = plan(&text, None).expect_err(&text);
            assert!(
                reason.contains(expected),
                "{reason:?} should say {expected:?}"
            );
            assert!(!reason.contains(SECRET), "{reason:?} leaks the secret");
        };
        check(
            "store_ids = [\"a\"]".into(),
            "kitchen_id and store_ids must both be set",
        );
        check(kitchen("kitchen = 1\n"), "unknown field `kitchen`");
        check(
            kitchen("hostname = \"Fry Box\"\n"),
            "hostname \"Fry Box\" must be",
        );
        check(kitchen("hostname = 7\n"), "hostname must be a string");
        check(kitchen("prefetch = \"lots\"\n"), "invalid type");
        check(
            kitchen("scanner_retry_ms = 0\n"),
            "scanner_retry_ms must be above 0",
        );
        // A broken line right where the password is: the message names the line, not its text.
        check(
            format!(
                "kitchen_id = \"bk-01\"\namqp_url = \"amqps://u:{SECRET}@h/%2f\nstore_ids = []\n"
            ),
            "kitchen.toml line 2",
        );
        check(
            format!("kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\namqp_url = \"{SECRET}\"\n"),
            "amqp_url is not an AMQP URL",
        );
        check(
            "kitchen_id = \"bk 01\"\nstore_ids = [\"a\"]\n".into(),
            "kitchen_id \"bk 01\" must be",
        );
    }

    #[test]
    fn links_must_follow_the_tls_rule() {
        let refused = |extra: &str| {
            let text = format!("kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\n{extra}");
            let reason = plan(&text, None).expect_err(&text);
            assert!(!reason.contains(SECRET), "{reason:?} leaks the secret");
            reason
        };
        assert_eq!(
            refused(&format!(
                "amqp_url = \"amqp://bk:{SECRET}@10.1.2.3:5672/%2f\"\n"
            )),
            "amqp_url: plaintext amqp:// to 10.1.2.3 is refused: a link off the box must use \
             amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
             127.0.0.0/8, ::1 or localhost only"
        );
        assert!(
            refused(&format!(
                "amqp_url = \"amqps://bk:pw@broker:5671/%2f\"\n\
                 database_url = \"postgres://bk:{SECRET}@10.1.2.3/kitchen?sslmode=require\"\n"
            ))
            .starts_with("database_url: sslmode=require to 10.1.2.3 is refused")
        );
        plan(
            "kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\n\
             amqp_url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n\
             database_url = \"postgres://bk@localhost/kitchen?sslmode=disable\"\n",
            None,
        )
        .expect("plaintext to loopback is allowed");
    }

    #[test]
    fn hostnames_from_kitchen_ids() {
        assert_eq!(hostname_for("BK_01"), "kitchen-bk-01");
        assert_eq!(hostname_for("a.b-"), "kitchen-a-b");
        assert_eq!(hostname_for(&"x".repeat(80)).len(), 63);
        assert_eq!(
            with_host(
                "127.0.0.1\tlocalhost\n127.0.1.1\told\n::1\tlocalhost\n",
                "kitchen-bk-01"
            ),
            "127.0.0.1\tlocalhost\n127.0.1.1\tkitchen-bk-01\n::1\tlocalhost\n"
        );
    }

    #[test]
    fn time_zone_names_are_checked() {
        let london = plan_ok(&kitchen("time_zone = \"Europe/London\"\n"));
        assert_eq!(london.time_zone.as_deref(), Some("Europe/London"));
        assert!(
            !london.config_text.contains("time_zone"),
            "a system setting, not an agent key"
        );
        assert_eq!(plan_ok(&kitchen("")).time_zone, None);
        for (zone, reason) in [
            (
                "\"../../etc/shadow\"",
                "time_zone \"../../etc/shadow\" is not a time zone name",
            ),
            (
                "\"Europe//London\"",
                "time_zone \"Europe//London\" is not a time zone name",
            ),
            ("\"\"", "time_zone \"\" is not a time zone name"),
            ("7", "time_zone must be a string"),
        ] {
            let error = plan(&kitchen(&format!("time_zone = {zone}\n")), None).expect_err(zone);
            assert!(error.starts_with(reason), "{zone}: {error}");
        }
    }

    /// `time_zone` becomes `/etc/localtime` (a link into the zone database) and
    /// `/etc/timezone`; a zone the database lacks refuses the whole file; the applied file's
    /// bytes are overwritten on the card before it is unlinked.
    #[test]
    fn a_time_zone_is_linked_and_the_card_file_scrubbed() {
        let root = std::env::temp_dir().join(format!("agent-provision-tz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let provision = Provision {
            source: root.join("boot/kitchen.toml"),
            config_file: root.join("etc/edge-agent/agent.toml"),
            credstore: root.join("etc/credstore"),
            etc: root.join("etc"),
            ca_file: root.join("etc/edge-agent/ca.pem"),
            zoneinfo: root.join("zoneinfo"),
        };
        std::fs::create_dir_all(root.join("boot")).expect("dirs");
        std::fs::create_dir_all(root.join("zoneinfo/Europe")).expect("dirs");
        std::fs::write(
            root.join("zoneinfo/Europe/London"),
            b"TZif2 a compiled zone",
        )
        .expect("zone");
        std::fs::write(root.join("zoneinfo/Europe/Nowhere"), b"not a zone file").expect("junk");

        std::fs::write(
            &provision.source,
            kitchen("time_zone = \"Europe/Nowhere\"\n"),
        )
        .expect("file");
        let error = provision.run().expect_err("refused");
        assert!(
            error.to_string().ends_with(&format!(
                "time_zone \"Europe/Nowhere\" is not in the time zone database ({})",
                root.join("zoneinfo").display()
            )),
            "{error}"
        );
        assert!(!root.join("etc/localtime").exists() && !root.join("etc/hostname").exists());

        let text = kitchen("time_zone = \"Europe/London\"\n");
        std::fs::write(&provision.source, &text).expect("file");
        // A second name for the card file's bytes: what is left of them after the run.
        let witness = root.join("boot/witness");
        std::fs::hard_link(&provision.source, &witness).expect("hard link");
        provision.run().expect("applied");
        assert_eq!(
            std::fs::read_link(root.join("etc/localtime")).expect("a link"),
            root.join("zoneinfo/Europe/London")
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/timezone")).expect("name file"),
            "Europe/London\n"
        );
        assert!(!provision.source.exists());
        assert_eq!(
            std::fs::read(&witness).expect("the bytes"),
            vec![0u8; text.len()],
            "overwritten before the unlink"
        );
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn run_applies_a_good_file_and_records_a_bad_one() {
        let root = std::env::temp_dir().join(format!("agent-provision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let provision = Provision {
            source: root.join("boot/kitchen.toml"),
            config_file: root.join("etc/edge-agent/agent.toml"),
            credstore: root.join("etc/credstore"),
            etc: root.join("etc"),
            ca_file: root.join("etc/edge-agent/ca.pem"),
            zoneinfo: root.join("zoneinfo"),
        };
        std::fs::create_dir_all(root.join("boot")).expect("dirs");
        std::fs::create_dir_all(root.join("etc/edge-agent")).expect("dirs");
        let error_file = root.join("etc/edge-agent/provision-error");
        std::fs::write(
            &provision.config_file,
            format!(
                "provision_error_file = {:?}\n",
                error_file.display().to_string()
            ),
        )
        .expect("config");
        assert_eq!(provision.run().expect("no file"), Outcome::NothingToDo);

        std::fs::write(&provision.source, "kitchen_id = \"bk-01\"\n").expect("bad file");
        let error = provision.run().expect_err("refused");
        assert!(error.to_string().contains("store_ids"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&error_file).expect("recorded"),
            "kitchen_id and store_ids must both be set\n"
        );
        assert!(
            provision.source.exists(),
            "a refused file stays to be fixed"
        );
        assert!(!root.join("etc/hostname").exists());

        std::fs::write(&provision.source, kitchen("")).expect("good file");
        let outcome = provision.run().expect("applied");
        assert_eq!(
            outcome,
            Outcome::Provisioned {
                kitchen_id: "bk-01".into(),
                stores: 2,
                hostname: "kitchen-bk-01".into()
            }
        );
        assert!(!provision.source.exists(), "the secrets leave the card");
        assert!(!error_file.exists(), "the error is cleared");
        let credential = root.join("etc/credstore/edge-agent.amqp_url");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&credential)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            std::fs::read_to_string(&credential)
                .expect("read")
                .contains(SECRET)
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).expect("hostname"),
            "kitchen-bk-01\n"
        );
        assert!(!provision.ca_file.exists(), "no ca_pem, no CA file");
        let config = Config::load(Some(&provision.config_file)).expect("the agent loads it");
        assert!(config.provisioned());
        assert_eq!(
            config.provision_error_file.as_deref(),
            Some(error_file.as_path())
        );
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn the_ca_bundle_is_checked_and_written_to_the_ca_file() {
        let root = kitchen_testkit::dir::TempDir::new("agent-provision-ca");
        let root = root.path();
        let provision = Provision {
            source: root.join("boot/kitchen.toml"),
            config_file: root.join("etc/edge-agent/agent.toml"),
            credstore: root.join("etc/credstore"),
            etc: root.join("etc"),
            ca_file: root.join("etc/edge-agent/ca.pem"),
            zoneinfo: root.join("zoneinfo"),
        };
        std::fs::create_dir_all(root.join("boot")).expect("dirs");
        let error_file = root.join("etc/edge-agent/provision-error");
        let ca = kitchen_testkit::tls::TestCa::new("kitchen test ca");
        let second = kitchen_testkit::tls::TestCa::new("second ca");
        let bundle = format!("{}{}", ca.cert_pem(), second.cert_pem());

        // Garbage between the PEM markers: the whole file is refused, nothing written.
        let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        std::fs::write(
            &provision.source,
            kitchen(&format!("ca_pem = '''\n{garbage}'''\n")),
        )
        .expect("bad file");
        let error = provision.run().expect_err("refused").to_string();
        assert!(
            error.starts_with("kitchen.toml refused: ca_pem: certificate 1: "),
            "{error}"
        );
        assert!(!provision.ca_file.exists());
        assert!(!provision.config_file.exists());
        assert!(
            std::fs::read_to_string(&error_file)
                .expect("recorded")
                .starts_with("ca_pem: certificate 1: ")
        );
        std::fs::write(
            &provision.source,
            kitchen("ca_pem = \"not a certificate\"\n"),
        )
        .expect("bad file");
        assert_eq!(
            provision.run().expect_err("refused").to_string(),
            "kitchen.toml refused: ca_pem: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
        );

        std::fs::write(
            &provision.source,
            kitchen(&format!("ca_pem = '''\n{bundle}'''\n")),
        )
        .expect("good file");
        provision.run().expect("applied");
        assert_eq!(
            std::fs::read_to_string(&provision.ca_file).expect("written"),
            bundle
        );
        let text = std::fs::read_to_string(&provision.config_file).expect("config");
        assert!(!text.contains("ca_pem"), "{text}");
        // The agent reads it as its CA bundle.
        let config = Config {
            ca_file: Some(provision.ca_file.clone()),
            ..Config::default()
        };
        let ca_bundle = config.ca_bundle().expect("parses").expect("there");
        assert_eq!(ca_bundle.certificates, 2);
        assert_eq!(ca_bundle.pem, bundle);
    }
}
