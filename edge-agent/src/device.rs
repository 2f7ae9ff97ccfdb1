//! Paired devices and what each role may do on the kitchen LAN (docs/security.md). A device —
//! a station tablet, a scanner station, a manager's phone — is paired once and then presents an
//! opaque random token; the box keeps only the token's SHA-256, with the device's role, name
//! and station. Pure: no IO (the randomness comes from the operating system's generator).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest device name.
pub const MAX_NAME_BYTES: usize = 64;
/// How long a pairing code shown on a manager's screen stays valid.
pub const PAIRING_CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// The letters of a pairing code: no 0/O, 1/I/L, 5/S, 2/Z, 8/B to misread on a greasy screen.
const CODE_ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXY34679";
/// Letters in a pairing code (shown as two groups of four): 25^8 ≈ 1.5 · 10^11.
const CODE_LEN: usize = 8;

/// What a paired device is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing (a wall screen).
    Display,
    /// One station's cook: bumps, recalls and batches at that station, and its scans.
    Cook,
    /// Expo: every station, ready and hand-off.
    Expo,
    /// The prep display: stock, labels, prep and receiving scans.
    Prep,
    /// Everything, including pairing, revocation and discarding stock.
    Manager,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Display,
        Role::Cook,
        Role::Expo,
        Role::Prep,
        Role::Manager,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Display => "display",
            Role::Cook => "cook",
            Role::Expo => "expo",
            Role::Prep => "prep",
            Role::Manager => "manager",
        }
    }

    pub fn parse(text: &str) -> Result<Self, DeviceError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| DeviceError::UnknownRole(text.to_owned()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A paired device as the box knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// A cook's station.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    pub paired_at_ms: i64,
    /// How it was paired: `console`, `bootstrap` (the provisioning code) or `code:<device id>`
    /// (a code a manager device made).
    pub paired_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

/// What a request wants to do, for [`Device::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read the kitchen: tickets, counts, the stream, labels.
    Read,
    /// Bump or recall at these stations (`None`: every station).
    Bump(Option<&'a str>),
    /// Start or complete a batch at a station (`None`: a session whose station is looked up
    /// later; only roles that may batch anywhere).
    Batch(Option<&'a str>),
    /// A scan as a station scanner at a station.
    StationScan(&'a str),
    /// A prep or receiving scan.
    PrepScan,
    /// Throw stock away.
    Discard,
    /// Pair, list and revoke devices; read `/readyz` and `/metrics` from the LAN.
    Manage,
    /// Tell Otter about an order: accept, a new prep time, reject, ready, hand off.
    Expo,
    /// Cancel an order on Otter.
    CancelOrder,
    /// 86 an item of this station, or put it back on.
    EightySix(&'a str),
    /// Print a ticket again: a station's (`Some`), or the bag ticket (`None`).
    Reprint(Option<&'a str>),
}

impl Device {
    /// Whether this device may do `action`.
    pub fn may(&self, action: Action<'_>) -> bool {
        let at_own_station = |station: Option<&str>| {
            self.role == Role::Cook && station.is_some() && station == self.station.as_deref()
        };
        match (self.role, action) {
            (_, Action::Read) | (Role::Manager, _) => true,
            (
                Role::Expo,
                Action::Bump(_)
                | Action::Batch(_)
                | Action::StationScan(_)
                | Action::Expo
                | Action::EightySix(_)
                | Action::Reprint(_),
            ) => true,
            (Role::Cook, Action::EightySix(station)) => at_own_station(Some(station)),
            (Role::Prep, Action::EightySix(_)) => true,
            (Role::Cook, Action::Bump(station) | Action::Batch(station)) => at_own_station(station),
            (Role::Cook, Action::StationScan(station)) => at_own_station(Some(station)),
            (Role::Cook, Action::Reprint(station)) => at_own_station(station),
            (Role::Prep, Action::PrepScan) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown role {0:?}: display, cook, expo, prep or manager")]
    UnknownRole(String),
    #[error("a cook device needs its station")]
    CookWithoutStation,
    #[error("only a cook device has a station")]
    StationWithoutCook,
    #[error("the device name must be 1 to {MAX_NAME_BYTES} bytes of printable text")]
    BadName,
    #[error("a paired device is already named {0:?}")]
    NameTaken(String),
}

/// Checks a new device's name, role and station; returns the trimmed name.
pub fn check_new(name: &str, role: Role, station: Option<&str>) -> Result<String, DeviceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(DeviceError::BadName);
    }
    match (role, station) {
        (Role::Cook, None) => Err(DeviceError::CookWithoutStation),
        (Role::Cook, Some(_)) | (_, None) => Ok(name.to_owned()),
        (_, Some(_)) => Err(DeviceError::StationWithoutCook),
    }
}

/// A new device token: 256 random bits, hex. Shown once; the box keeps its [`token_hash`].
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("kd1_{}", hex(&bytes))
}

/// A new staff PIN: six random digits (docs/otter.md: who may 86).
pub fn new_pin() -> String {
    use rand::Rng;
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000))
}

/// A new device id: 64 random bits, hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("dev-{}", hex(&bytes))
}

/// What the box stores for a token (or a pairing code): its SHA-256, hex. Tokens carry 256
/// random bits, so a plain hash suffices (no salt or stretching needed: nothing to guess).
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new pairing code, `XXXX-XXXX`.
pub fn new_pairing_code() -> String {
    let mut code = String::with_capacity(CODE_LEN + 1);
    let mut rng = rand::rngs::OsRng;
    for index in 0..CODE_LEN {
        if index == CODE_LEN / 2 {
            code.push('-');
        }
        // 256 is not a multiple of the alphabet: reject the biased tail.
        let limit = 256 - 256 % CODE_ALPHABET.len();
        let letter = loop {
            let byte = (rng.next_u32() & 0xff) as usize;
            if byte < limit {
                break CODE_ALPHABET[byte % CODE_ALPHABET.len()];
            }
        };
        code.push(char::from(letter));
    }
    code
}

/// A pairing code as typed: upper-cased, spaces and dashes dropped, so `abcd efgh`,
/// `ABCD-EFGH` and `abcdefgh` are the same code. `None`: too long to be one.
pub fn normalize_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    Some(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(role: Role, station: Option<&str>) -> Device {
        Device {
            id: "dev-1".into(),
            name: "t".into(),
            role,
            station: station.map(str::to_owned),
            paired_at_ms: 0,
            paired_by: "console".into(),
            revoked_at_ms: None,
        }
    }

    #[test]
    fn roles_allow_exactly_their_actions() {
        let actions = [
            Action::Read,
            Action::Bump(Some("grill")),
            Action::Bump(Some("fry")),
            Action::Bump(None),
            Action::Batch(Some("grill")),
            Action::Batch(None),
            Action::StationScan("grill"),
            Action::StationScan("fry"),
            Action::PrepScan,
            Action::Discard,
            Action::Manage,
            Action::Expo,
            Action::CancelOrder,
            Action::EightySix("grill"),
            Action::EightySix("fry"),
        ];
        let allowed = |d: &Device| actions.map(|a| d.may(a));
        assert_eq!(
            allowed(&device(Role::Display, None)),
            [
                true, false, false, false, false, false, false, false, false, false, false, false,
                false, false, false
            ]
        );
        assert_eq!(
            allowed(&device(Role::Cook, Some("grill"))),
            [
                true, true, false, false, true, false, true, false, false, false, false, false,
                false, true, false
            ]
        );
        assert_eq!(
            allowed(&device(Role::Expo, None)),
            [
                true, true, true, true, true, true, true, true, false, false, false, true, false,
                true, true
            ]
        );
        assert_eq!(
            allowed(&device(Role::Prep, None)),
            [
                true, false, false, false, false, false, false, false, true, false, false, false,
                false, true, true
            ]
        );
        assert_eq!(allowed(&device(Role::Manager, None)), [true; 15]);
    }

    #[test]
    fn reprints_are_for_expo_managers_and_a_cook_at_its_station() {
        let actions = [
            Action::Reprint(None),
            Action::Reprint(Some("grill")),
            Action::Reprint(Some("fry")),
        ];
        let allowed = |d: &Device| actions.map(|a| d.may(a));
        assert_eq!(allowed(&device(Role::Display, None)), [false; 3]);
        assert_eq!(allowed(&device(Role::Prep, None)), [false; 3]);
        assert_eq!(
            allowed(&device(Role::Cook, Some("grill"))),
            [false, true, false]
        );
        assert_eq!(allowed(&device(Role::Expo, None)), [true; 3]);
        assert_eq!(allowed(&device(Role::Manager, None)), [true; 3]);
    }

    #[test]
    fn new_devices_are_checked() {
        assert_eq!(
            check_new("  Grill 1 ", Role::Cook, Some("grill")),
            Ok("Grill 1".into())
        );
        assert_eq!(
            check_new("x", Role::Cook, None),
            Err(DeviceError::CookWithoutStation)
        );
        assert_eq!(
            check_new("x", Role::Expo, Some("grill")),
            Err(DeviceError::StationWithoutCook)
        );
        assert_eq!(check_new(" ", Role::Expo, None), Err(DeviceError::BadName));
        assert_eq!(
            check_new("a\u{0}b", Role::Expo, None),
            Err(DeviceError::BadName)
        );
        assert_eq!(
            check_new(&"n".repeat(65), Role::Expo, None),
            Err(DeviceError::BadName)
        );
        assert_eq!(
            Role::parse("chef"),
            Err(DeviceError::UnknownRole("chef".into()))
        );
    }

    #[test]
    fn tokens_codes_and_hashes() {
        let token = new_token();
        assert_eq!(token.len(), 4 + 64);
        assert_ne!(token, new_token());
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let code = new_pairing_code();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.chars()
                .all(|c| c == '-' || CODE_ALPHABET.contains(&(c as u8)))
        );
        assert_eq!(normalize_code(" abcd-efgh "), Some("ABCDEFGH".into()));
        assert_eq!(normalize_code(&"a".repeat(65)), None);
    }
}
