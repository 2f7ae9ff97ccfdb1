//! Barcode-scan parsing for the handheld scanner: one frame of bytes in, one [`Scan`] out (an
//! order ticket, a friendly id, a retail product code, a GS1 element string, a transfer unit or
//! the agent's own prep label). Pure: no IO, and the clock comes in as `today`. docs/agent.md
//! ("Scan parsing") lists the accepted formats and defines the prep label.

mod classify;
mod gs1;
mod prep_label;
#[cfg(test)]
mod tests;

use chrono::NaiveDate;

use classify::{classify, product, verify_check_digit};
use gs1::{gs1, is_cset82, parse_bracketed, parse_raw};
use prep_label::PREP_ITEM_AI;
pub use prep_label::PrepLabel;

/// Longest frame accepted, in bytes, counted before anything is stripped.
pub const MAX_FRAME_LEN: usize = 256;
/// ASCII group separator: ends a variable-length GS1 field (FNC1 as scanners transmit it).
pub const GS: char = '\u{1d}';
pub(super) const GS_BYTE: u8 = 0x1d;

/// AIM symbology identifiers whose data is a GS1 element string: GS1-128, GS1 DataMatrix,
/// GS1 QR Code, GS1 DataBar.
pub(super) const GS1_SYMBOLOGIES: [&str; 4] = ["]C1", "]d2", "]Q3", "]e0"];
/// Longest order id a ticket may carry.
pub(super) const MAX_ORDER_ID_LEN: usize = 64;

/// What a scanner is for: decides what a scan does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "station")]
pub enum ScanRole {
    /// On the line at a station: tickets bump orders there; prep labels mark stock used.
    Station(String),
    /// At the prep table: prep labels and GS1 product codes add stock.
    Prep,
    /// At the back door: transfer units (SSCC labels) are received.
    Receiving,
    /// At Expo: a bag's ticket hands the order off (Otter's fulfill).
    Expo,
}

impl ScanRole {
    pub fn station(&self) -> Option<&str> {
        match self {
            Self::Station(station) => Some(station),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Station(_) => "station",
            Self::Prep => "prep",
            Self::Receiving => "receiving",
            Self::Expo => "expo",
        }
    }
}

/// What one scan was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scan {
    /// `ORDER:<order_id>`, the ticket barcode.
    Ticket { order_id: String },
    /// 3–12 characters of `[A-Za-z0-9-]` that are not a product code: maybe an order's friendly
    /// id. The caller resolves it against the open orders (and decides what ambiguity means).
    FriendlyId(String),
    /// A retail product code (EAN-13, UPC-A or EAN-8), check digit verified, left-padded with
    /// zeros to 14 digits.
    Product { gtin14: String },
    /// A GS1 element string that is neither a prep label nor a transfer unit.
    Gs1(Gs1),
    /// The agent's own prep label: a GS1 element string carrying AI (91).
    PrepLabel {
        item_id: String,
        batch_id: String,
        prepared: NaiveDate,
        use_by: NaiveDate,
        quantity: u32,
    },
    /// A logistic unit being received: a GS1 element string carrying an SSCC, AI (00). `gs1`
    /// holds everything the label carried (its `sscc` is this one).
    TransferUnit { sscc: String, gs1: Gs1 },
}

/// The fields of a GS1 element string, each AI at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Gs1 {
    /// (00) SSCC, 18 digits, check digit verified.
    pub sscc: Option<String>,
    /// (01) GTIN-14, check digit verified.
    pub gtin: Option<String>,
    /// (02) GTIN of the contained trade items, check digit verified.
    pub content: Option<String>,
    /// (10) batch or lot, up to 20 characters.
    pub lot: Option<String>,
    /// (11) production date.
    pub production: Option<NaiveDate>,
    /// (13) packaging date.
    pub packaging: Option<NaiveDate>,
    /// (15) best before date.
    pub best_before: Option<NaiveDate>,
    /// (17) expiration (use by) date.
    pub use_by: Option<NaiveDate>,
    /// (21) serial number, up to 20 characters.
    pub serial: Option<String>,
    /// (310n) net weight in kg as an exact decimal string with the n decimals the label gave:
    /// `(3103)001250` is `"1.250"`, `(3100)000012` is `"12"`.
    pub net_kg: Option<String>,
    /// (37) count of trade items, up to 8 digits.
    pub count: Option<u32>,
    /// (90)–(99) internal fields, in the order scanned.
    pub internal: Vec<(String, String)>,
}

/// Why a scan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("empty scan")]
    Empty,
    #[error("scan too long: {len} bytes, at most {MAX_FRAME_LEN}")]
    TooLong { len: usize },
    #[error("scan is not text: invalid UTF-8 at byte {at}")]
    NotText { at: usize },
    #[error("bad check digit in {field}: expected {expected}, found {found}")]
    BadCheckDigit {
        field: String,
        expected: char,
        found: char,
    },
    #[error("impossible date {value} in AI ({ai})")]
    ImpossibleDate { ai: String, value: String },
    #[error("unknown GS1 application identifier ({ai})")]
    UnknownAi { ai: String },
    #[error("AI ({ai}) truncated: needs {expected} characters, has {got}")]
    Truncated {
        ai: String,
        expected: usize,
        got: usize,
    },
    #[error("AI ({ai}) too long: at most {max} characters, has {got}")]
    FieldTooLong { ai: String, max: usize, got: usize },
    #[error("bad value in AI ({ai}): {reason}")]
    BadValue { ai: String, reason: String },
    #[error("AI ({ai}) appears twice")]
    DuplicateAi { ai: String },
    #[error("bad prep label: {reason}")]
    PrepLabel { reason: String },
    #[error("unrecognised scan: {reason}")]
    Unrecognised { reason: String },
}

/// Parses one frame from the scanner. `today` decides the century of two-digit GS1 years
/// (GS1 General Specifications 7.12: within 49 years back and 50 ahead).
pub fn parse(raw: &[u8], today: NaiveDate) -> Result<Scan, ScanError> {
    if raw.len() > MAX_FRAME_LEN {
        return Err(ScanError::TooLong { len: raw.len() });
    }
    let (symbology, data) = strip_aim(raw.trim_ascii());
    let data = data.trim_ascii();
    if data.is_empty() {
        return Err(ScanError::Empty);
    }
    let text = std::str::from_utf8(data).map_err(|error| ScanError::NotText {
        at: error.valid_up_to(),
    })?;
    match symbology {
        Some(id) if GS1_SYMBOLOGIES.contains(&id) => {
            if text.starts_with('(') {
                gs1(parse_bracketed(text)?, today)
            } else {
                gs1(parse_raw(text)?, today)
            }
        }
        // EAN-13 sends UPC-A as 13 digits with a leading zero; some scanners send 12.
        Some("]E0") => match text.len() {
            13 if all_digits(text) => product(text, "EAN-13"),
            12 if all_digits(text) => product(text, "UPC-A"),
            _ => Err(unrecognised("]E0 data must be 12 or 13 digits")),
        },
        Some("]E4") if text.len() == 8 && all_digits(text) => product(text, "EAN-8"),
        Some("]E4") => Err(unrecognised("]E4 data must be 8 digits")),
        _ => classify(text, today),
    }
}

/// Splits an AIM symbology identifier (`]`, a letter, a digit: `]C1`, `]E0`, `]d2`) off the
/// front of a frame. Leading whitespace is the caller's to strip.
pub fn strip_aim(raw: &[u8]) -> (Option<&str>, &[u8]) {
    match raw {
        [b']', letter, digit, rest @ ..]
            if letter.is_ascii_alphabetic() && digit.is_ascii_digit() =>
        {
            // Three ASCII bytes are always UTF-8; `ok()` only avoids an unwrap.
            match raw.get(..3).and_then(|id| std::str::from_utf8(id).ok()) {
                Some(id) => (Some(id), rest),
                None => (None, raw),
            }
        }
        _ => (None, raw),
    }
}

pub(super) fn unrecognised(reason: &str) -> ScanError {
    ScanError::Unrecognised {
        reason: reason.to_owned(),
    }
}

pub(super) fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}
