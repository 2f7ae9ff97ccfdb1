//! A serial scanner's `[[scanners]]` entry in the agent's config file, checked as it is read:
//! after deserializing, a `ScannerConfig` is one the serial task can run.

use std::path::PathBuf;

use serde::Deserialize;

use crate::scan::{MAX_FRAME_LEN, ScanRole};

/// What ends a frame (docs/scanners.md, "Framing").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suffix {
    /// CR (the factory setting of most scanners in serial mode); an LF after it is ignored.
    #[default]
    Cr,
    /// LF; a CR after it (or just before it) is ignored.
    Lf,
    /// CR LF together; a lone CR or LF is data.
    Crlf,
    /// Nothing: a frame ends when the scanner has sent nothing for `idle_ms`.
    None,
}

/// One serial scanner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawScannerConfig")]
pub struct ScannerConfig {
    /// Unique; the scans' `device`. Letters, digits, `-`, `_`, `.`; at most 64.
    pub name: String,
    /// The serial device, opened anew at each (re)connect, so a `/dev/serial/by-id/...` symlink
    /// that udev points at another tty is followed.
    pub device: PathBuf,
    pub baud: u32,
    pub suffix: Suffix,
    /// Quiet time that ends a frame under the `none` suffix, in milliseconds.
    pub idle_ms: u64,
    /// Stripped from the start of a frame that begins with it.
    pub prefix: Option<String>,
    /// What the scans are for (with the station, for a station scanner).
    pub role: ScanRole,
}

/// The entry as written; `ScannerConfig::try_from` checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScannerConfig {
    name: String,
    device: PathBuf,
    #[serde(default = "default_baud")]
    baud: u32,
    #[serde(default)]
    suffix: Suffix,
    #[serde(default = "default_idle_ms")]
    idle_ms: u64,
    #[serde(default)]
    prefix: Option<String>,
    role: String,
    #[serde(default)]
    station: Option<String>,
}

pub const DEFAULT_BAUD: u32 = 9600;
pub const DEFAULT_IDLE_MS: u64 = 50;
/// Longest `idle_ms`: a frame must not wait longer than this for its end.
const MAX_IDLE_MS: u64 = 10_000;
const MAX_NAME_LEN: usize = 64;

fn default_baud() -> u32 {
    DEFAULT_BAUD
}

fn default_idle_ms() -> u64 {
    DEFAULT_IDLE_MS
}

impl TryFrom<RawScannerConfig> for ScannerConfig {
    type Error = String;

    fn try_from(raw: RawScannerConfig) -> Result<Self, String> {
        let name = raw.name;
        // The name goes into metric labels and log fields as it is: keep it plain.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(plain) {
            return Err(format!(
                "scanner name {name:?}: 1–{MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
            ));
        }
        if raw.device.as_os_str().is_empty() {
            return Err(format!("scanner {name:?}: device is empty"));
        }
        if raw.baud == 0 {
            return Err(format!("scanner {name:?}: baud must be above 0"));
        }
        if !(1..=MAX_IDLE_MS).contains(&raw.idle_ms) {
            return Err(format!(
                "scanner {name:?}: idle_ms must be 1–{MAX_IDLE_MS}, not {}",
                raw.idle_ms
            ));
        }
        if let Some(prefix) = &raw.prefix
            && (prefix.is_empty() || prefix.len() >= MAX_FRAME_LEN)
        {
            return Err(format!(
                "scanner {name:?}: prefix must be 1–{} bytes",
                MAX_FRAME_LEN - 1
            ));
        }
        let role = match (raw.role.as_str(), raw.station) {
            ("station", Some(station)) if !station.trim().is_empty() => {
                ScanRole::Station(station.trim().to_owned())
            }
            ("station", _) => {
                return Err(format!(
                    "scanner {name:?}: role \"station\" needs `station`, the station's id"
                ));
            }
            (role @ ("prep" | "receiving" | "expo"), Some(_)) => {
                return Err(format!(
                    "scanner {name:?}: a {role} scanner has no `station`"
                ));
            }
            ("prep", None) => ScanRole::Prep,
            ("receiving", None) => ScanRole::Receiving,
            ("expo", None) => ScanRole::Expo,
            (role, _) => {
                return Err(format!(
                    "scanner {name:?}: unknown role {role:?}: station, prep, receiving or expo"
                ));
            }
        };
        Ok(Self {
            name,
            device: raw.device,
            baud: raw.baud,
            suffix: raw.suffix,
            idle_ms: raw.idle_ms,
            prefix: raw.prefix,
            role,
        })
    }
}

impl ScannerConfig {
    /// A station scanner at `station` on `device`, every other setting at its default.
    pub fn station(name: &str, device: impl Into<PathBuf>, station: &str) -> Self {
        Self {
            name: name.to_owned(),
            device: device.into(),
            baud: DEFAULT_BAUD,
            suffix: Suffix::default(),
            idle_ms: DEFAULT_IDLE_MS,
            prefix: None,
            role: ScanRole::Station(station.to_owned()),
        }
    }
}

/// Checks what one entry cannot: the names are unique.
pub fn validate(scanners: &[ScannerConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for scanner in scanners {
        if !names.insert(scanner.name.as_str()) {
            return Err(format!("two scanners are named {:?}", scanner.name));
        }
    }
    Ok(())
}
