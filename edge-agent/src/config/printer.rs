//! A ticket printer's `[[printers]]` entry in the agent's config file, checked as it is read:
//! where it is (a network address, raw TCP, port 9100 unless given; or a device path: a USB
//! printer `/dev/usb/lp*` or a serial port), its paper, and what it prints.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::receipt::{Route, Routes, columns_for_paper};

/// The raw TCP port of network receipt printers ("JetDirect", "RAW 9100").
pub const DEFAULT_PORT: u16 = 9100;

/// The serial speeds receipt printers use.
pub const BAUD_RATES: [u32; 5] = [9600, 19_200, 38_400, 57_600, 115_200];

/// Where a printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterTarget {
    /// `host:port`, resolved at each connect (a name in the LAN's DNS works).
    Network(String),
    /// A character device; with `baud`, a serial port set to that speed, 8N1, raw.
    Device { path: PathBuf, baud: Option<u32> },
}

impl std::fmt::Display for PrinterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrinterTarget::Network(address) => write!(f, "tcp://{address}"),
            PrinterTarget::Device { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// One ticket printer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPrinterConfig")]
pub struct PrinterConfig {
    /// Unique; shown in `/api/status` and the metrics.
    pub name: String,
    pub target: PrinterTarget,
    /// Paper width in millimetres: 58 or 80.
    pub paper_mm: u32,
    /// Stations whose tickets it prints.
    pub stations: Vec<String>,
    /// Prints the bag ticket when an order is ready.
    pub expo: bool,
    /// Prints a station's tickets while none of its tablets is connected.
    pub fallback: bool,
    /// Reads the printer's real-time status (`DLE EOT`) before and after each ticket; off for
    /// a printer that does not answer it (a job then counts as printed once sent).
    pub status: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrinterConfig {
    name: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    device: Option<PathBuf>,
    #[serde(default)]
    baud: Option<u32>,
    #[serde(default = "default_paper")]
    paper_mm: u32,
    #[serde(default)]
    stations: Vec<String>,
    #[serde(default)]
    expo: bool,
    #[serde(default)]
    fallback: bool,
    #[serde(default = "default_status")]
    status: bool,
}

fn default_paper() -> u32 {
    80
}

fn default_status() -> bool {
    true
}

impl TryFrom<RawPrinterConfig> for PrinterConfig {
    type Error = String;

    fn try_from(raw: RawPrinterConfig) -> Result<Self, String> {
        let name = raw.name;
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
            return Err(format!(
                "printer name {name:?}: 1–64 letters, digits, '-', '_' or '.'"
            ));
        }
        let target = match (raw.address, raw.device) {
            (Some(address), None) => {
                if raw.baud.is_some() {
                    return Err(format!("printer {name:?}: `baud` is for a serial `device`"));
                }
                PrinterTarget::Network(network_address(&name, &address)?)
            }
            (None, Some(path)) if !path.as_os_str().is_empty() => {
                if let Some(baud) = raw.baud
                    && !BAUD_RATES.contains(&baud)
                {
                    return Err(format!(
                        "printer {name:?}: baud must be one of {BAUD_RATES:?}, not {baud}"
                    ));
                }
                PrinterTarget::Device {
                    path,
                    baud: raw.baud,
                }
            }
            (None, Some(_)) => return Err(format!("printer {name:?}: device is empty")),
            _ => {
                return Err(format!(
                    "printer {name:?}: give `address` (network, host[:port]) or `device` (a path), one of them"
                ));
            }
        };
        if columns_for_paper(raw.paper_mm).is_none() {
            return Err(format!(
                "printer {name:?}: paper_mm must be 58 or 80, not {}",
                raw.paper_mm
            ));
        }
        let stations: Vec<String> = raw
            .stations
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if stations.is_empty() && !raw.expo && !raw.fallback {
            return Err(format!(
                "printer {name:?} prints nothing: give it `stations`, `expo = true` or `fallback = true`"
            ));
        }
        Ok(Self {
            name,
            target,
            paper_mm: raw.paper_mm,
            stations,
            expo: raw.expo,
            fallback: raw.fallback,
            status: raw.status,
        })
    }
}

/// `host[:port]` with the port defaulting to 9100; a literal address is checked now, a name
/// is resolved at each connect.
fn network_address(name: &str, address: &str) -> Result<String, String> {
    let address = address.trim();
    if address.is_empty() || address.contains('/') || address.chars().any(char::is_whitespace) {
        return Err(format!(
            "printer {name:?}: address {address:?} is not host[:port]"
        ));
    }
    if address.parse::<SocketAddr>().is_ok() {
        return Ok(address.to_owned());
    }
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(|_| address.to_owned())
            .ok_or_else(|| format!("printer {name:?}: bad port in {address:?}")),
        Some(_) => Err(format!("printer {name:?}: address {address:?} has no host")),
        None => Ok(format!("{address}:{DEFAULT_PORT}")),
    }
}

/// What no single entry can say is wrong: unique names, one fallback printer at most.
pub fn validate(printers: &[PrinterConfig]) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for printer in printers {
        if !names.insert(printer.name.as_str()) {
            return Err(format!("two printers are named {:?}", printer.name));
        }
    }
    if printers.iter().filter(|p| p.fallback).count() > 1 {
        return Err("only one printer may be the fallback printer".into());
    }
    Ok(())
}

/// The kitchen's routes to its printers.
pub fn routes(printers: &[PrinterConfig]) -> Routes {
    Routes {
        printers: printers
            .iter()
            .map(|p| Route {
                printer: p.name.clone(),
                columns: columns_for_paper(p.paper_mm).unwrap_or(48),
                stations: p.stations.clone(),
                expo: p.expo,
                fallback: p.fallback,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<PrinterConfig>, String> {
        #[derive(Deserialize)]
        struct File {
            printers: Vec<PrinterConfig>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&file.printers)?;
        Ok(file.printers)
    }

    #[test]
    fn printers_are_read_with_their_defaults() {
        let printers = parse(
            r#"
            [[printers]]
            name = "fry"
            address = "192.168.1.50"
            stations = ["fry"]

            [[printers]]
            name = "expo"
            address = "expo-printer.local:9101"
            paper_mm = 58
            expo = true
            fallback = true

            [[printers]]
            name = "grill"
            device = "/dev/usb/lp0"
            stations = ["grill", "prep"]
            status = false

            [[printers]]
            name = "pass"
            device = "/dev/ttyUSB0"
            baud = 115200
            expo = true
            "#,
        )
        .expect("valid");
        assert_eq!(
            printers[0].target,
            PrinterTarget::Network("192.168.1.50:9100".into())
        );
        assert_eq!((printers[0].paper_mm, printers[0].status), (80, true));
        assert_eq!(
            printers[1].target,
            PrinterTarget::Network("expo-printer.local:9101".into())
        );
        assert!(printers[1].fallback && printers[1].expo);
        assert_eq!(
            printers[2].target,
            PrinterTarget::Device {
                path: "/dev/usb/lp0".into(),
                baud: None
            }
        );
        assert!(!printers[2].status);
        assert_eq!(
            printers[3].target,
            PrinterTarget::Device {
                path: "/dev/ttyUSB0".into(),
                baud: Some(115_200)
            }
        );
        let routes = routes(&printers);
        assert_eq!(routes.fallback().map(|r| r.columns), Some(32));
        assert_eq!(
            routes
                .station("prep")
                .map(|r| r.printer.as_str())
                .collect::<Vec<_>>(),
            ["grill"]
        );
        assert_eq!(routes.expo().count(), 2);
    }

    #[test]
    fn bad_printer_entries_are_refused_with_the_reason() {
        let check = |body: &str, expected: &str| {
            let text = format!("[[printers]]\nname = \"p\"\n{body}");
            let error = parse(&text).expect_err(&text);
            assert!(
                error.contains(expected),
                "{error:?} should say {expected:?}"
            );
        };
        check("stations = [\"fry\"]", "give `address`");
        check(
            "address = \"10.0.0.9\"\ndevice = \"/dev/usb/lp0\"\nexpo = true",
            "give `address`",
        );
        check("address = \"10.0.0.9\"", "prints nothing");
        check(
            "address = \"10.0.0.9\"\nexpo = true\npaper_mm = 76",
            "58 or 80, not 76",
        );
        check("address = \"host:port\"\nexpo = true", "bad port");
        check(
            "address = \"10.0.0.9\"\nbaud = 9600\nexpo = true",
            "`baud` is for",
        );
        check(
            "device = \"/dev/ttyS0\"\nbaud = 1200\nexpo = true",
            "not 1200",
        );
        check(
            "address = \"10.0.0.9\"\nexpo = true\ncolour = \"red\"",
            "unknown field",
        );
        let two = "[[printers]]\nname = \"p\"\naddress = \"a\"\nfallback = true\n";
        let error = parse(&format!("{two}{}", two.replace("\"p\"", "\"q\""))).expect_err("two");
        assert!(error.contains("only one printer"), "{error}");
        let error = parse(&format!("{two}{two}")).expect_err("same name");
        assert!(error.contains("two printers are named \"p\""), "{error}");
    }
}
