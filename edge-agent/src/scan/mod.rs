//! Barcode-scan parsing for the handheld scanner: one frame of bytes in, one [`Scan`] out (an
//! order ticket, a friendly id, a retail product code, a GS1 element string, a transfer unit or
//! the agent's own prep label). Pure: no IO, and the clock comes in as `today`. docs/agent.md
//! ("Scan parsing") lists the accepted formats and defines the prep label.

use chrono::{Datelike, NaiveDate};

/// Longest frame accepted, in bytes, counted before anything is stripped.
pub const MAX_FRAME_LEN: usize = 256;
/// ASCII group separator: ends a variable-length GS1 field (FNC1 as scanners transmit it).
pub const GS: char = '\u{1d}';
const GS_BYTE: u8 = 0x1d;

/// AIM symbology identifiers whose data is a GS1 element string: GS1-128, GS1 DataMatrix,
/// GS1 QR Code, GS1 DataBar.
const GS1_SYMBOLOGIES: [&str; 4] = ["]C1", "]d2", "]Q3", "]e0"];
/// Longest order id a ticket may carry.
const MAX_ORDER_ID_LEN: usize = 64;
/// The internal AI that marks the agent's prep label and carries its item id.
const PREP_ITEM_AI: &str = "91";

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

/// The raw GS1 element string (GS separators, no leading FNC1) of a prep label, to print as
/// GS1-128 or GS1 DataMatrix.
pub fn prep_label(
    item_id: &str,
    batch_id: &str,
    prepared: NaiveDate,
    use_by: NaiveDate,
    quantity: u32,
) -> Result<String, ScanError> {
    check_prep_label(item_id, batch_id, prepared, use_by, quantity)?;
    Ok(
        prep_label_fields(item_id, batch_id, prepared, use_by, quantity)
            .map(|(ai, value, variable)| {
                format!(
                    "{ai}{value}{}",
                    if variable {
                        GS.to_string()
                    } else {
                        String::new()
                    }
                )
            })
            .concat()
            .trim_end_matches(GS)
            .to_owned(),
    )
}

/// The same prep label in bracketed human-readable form, for the text under the barcode.
pub fn prep_label_human(
    item_id: &str,
    batch_id: &str,
    prepared: NaiveDate,
    use_by: NaiveDate,
    quantity: u32,
) -> Result<String, ScanError> {
    check_prep_label(item_id, batch_id, prepared, use_by, quantity)?;
    Ok(
        prep_label_fields(item_id, batch_id, prepared, use_by, quantity)
            .map(|(ai, value, _)| format!("({ai}){value}"))
            .concat(),
    )
}

/// A prep label's fields in label order: (AI, value, variable length).
fn prep_label_fields(
    item_id: &str,
    batch_id: &str,
    prepared: NaiveDate,
    use_by: NaiveDate,
    quantity: u32,
) -> [(&'static str, String, bool); 5] {
    [
        ("11", yymmdd(prepared), false),
        ("17", yymmdd(use_by), false),
        (PREP_ITEM_AI, item_id.to_owned(), true),
        ("10", batch_id.to_owned(), true),
        ("37", quantity.to_string(), true),
    ]
}

fn check_prep_label(
    item_id: &str,
    batch_id: &str,
    prepared: NaiveDate,
    use_by: NaiveDate,
    quantity: u32,
) -> Result<(), ScanError> {
    // Parentheses are GS1 characters but would make the bracketed form ambiguous.
    let label_text = |ai: &str, what: &str, value: &str, max: usize| {
        let fits = (1..=max).contains(&value.len())
            && value
                .bytes()
                .all(|b| is_cset82(b) && b != b'(' && b != b')');
        match fits {
            true => Ok(()),
            false => Err(ScanError::BadValue {
                ai: ai.to_owned(),
                reason: format!(
                    "{what} must be 1–{max} GS1 characters (letters, digits, !\"%&'*+,-./:;<=>?_)"
                ),
            }),
        }
    };
    label_text(PREP_ITEM_AI, "item id", item_id, 90)?;
    label_text("10", "batch id", batch_id, 20)?;
    if quantity > 99_999_999 {
        return Err(ScanError::BadValue {
            ai: "37".to_owned(),
            reason: "quantity must be at most 8 digits".to_owned(),
        });
    }
    if use_by < prepared {
        return Err(ScanError::PrepLabel {
            reason: format!("use-by {use_by} is before prepared {prepared}"),
        });
    }
    Ok(())
}

fn yymmdd(date: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year().rem_euclid(100),
        date.month(),
        date.day()
    )
}

fn unrecognised(reason: &str) -> ScanError {
    ScanError::Unrecognised {
        reason: reason.to_owned(),
    }
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

/// Frames without a symbology identifier (or with one that says nothing about the content).
fn classify(text: &str, today: NaiveDate) -> Result<Scan, ScanError> {
    if let Some(order_id) = text
        .get(..6)
        .filter(|prefix| prefix.eq_ignore_ascii_case("ORDER:"))
        .and_then(|_| text.get(6..))
    {
        let valid = (1..=MAX_ORDER_ID_LEN).contains(&order_id.len())
            && order_id.bytes().all(|b| b.is_ascii_graphic());
        return match valid {
            true => Ok(Scan::Ticket {
                order_id: order_id.to_owned(),
            }),
            false => Err(unrecognised(
                "a ticket's order id must be 1–64 printable ASCII characters",
            )),
        };
    }
    if text.starts_with('(') {
        return gs1(parse_bracketed(text)?, today);
    }
    if text.contains(GS) {
        return gs1(parse_raw(text)?, today);
    }
    if all_digits(text) {
        match text.len() {
            8 | 12 => {
                let name = if text.len() == 8 { "EAN-8" } else { "UPC-A" };
                if let Ok(scan) = product(text, name) {
                    return Ok(scan);
                }
            }
            // Thirteen digits are an EAN-13 unless the check digit fails and they read as a
            // GS1 element string instead (`(17)251231(37)001`).
            13 => {
                return product(text, "EAN-13").or_else(|error| {
                    parse_raw(text)
                        .and_then(|elements| gs1(elements, today))
                        .map_err(|_| error)
                });
            }
            _ => {}
        }
    }
    if (3..=12).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Ok(Scan::FriendlyId(text.to_owned()));
    }
    if text.len() > 12 && text.bytes().take(2).all(|b| b.is_ascii_digit()) {
        return gs1(parse_raw(text)?, today);
    }
    Err(unrecognised(
        "not a ticket, friendly id, product code or GS1 element string",
    ))
}

fn product(digits: &str, name: &str) -> Result<Scan, ScanError> {
    verify_check_digit(name, digits)?;
    Ok(Scan::Product {
        gtin14: format!("{digits:0>14}"),
    })
}

/// GS1 mod-10 check digit of ASCII digits (the check digit itself excluded).
fn check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    // (10 - sum % 10) % 10 is a single digit.
    ((10 - sum % 10) % 10) as u8
}

/// `digits` must be non-empty ASCII digits.
fn verify_check_digit(field: &str, digits: &str) -> Result<(), ScanError> {
    let Some((&last, payload)) = digits.as_bytes().split_last() else {
        return Err(unrecognised("no digits"));
    };
    let expected = b'0' + check_digit(payload);
    match last == expected {
        true => Ok(()),
        false => Err(ScanError::BadCheckDigit {
            field: field.to_owned(),
            expected: char::from(expected),
            found: char::from(last),
        }),
    }
}

#[derive(Clone, Copy)]
enum Length {
    Fixed(usize),
    UpTo(usize),
}

#[derive(Clone, Copy)]
enum Kind {
    /// Digits with a GS1 check digit.
    Checked,
    /// YYMMDD, day 00 meaning the last day of the month.
    Date,
    Digits,
    /// GS1 character set 82.
    Text,
}

/// The AIs this parser knows: their length and what they hold.
fn ai_spec(ai: &str) -> Option<(Length, Kind)> {
    Some(match ai {
        "00" => (Length::Fixed(18), Kind::Checked),
        "01" | "02" => (Length::Fixed(14), Kind::Checked),
        "10" | "21" => (Length::UpTo(20), Kind::Text),
        "11" | "13" | "15" | "17" => (Length::Fixed(6), Kind::Date),
        "3100" | "3101" | "3102" | "3103" | "3104" | "3105" => (Length::Fixed(6), Kind::Digits),
        "37" => (Length::UpTo(8), Kind::Digits),
        "90" => (Length::UpTo(30), Kind::Text),
        "91" | "92" | "93" | "94" | "95" | "96" | "97" | "98" | "99" => {
            (Length::UpTo(90), Kind::Text)
        }
        _ => return None,
    })
}

/// How many digits an AI starting with these two digits has (GS1 General Specifications,
/// figure 3.2-1 of AI prefixes), so that an unknown AI can be named whole.
fn ai_digits(prefix: &[u8]) -> usize {
    match prefix {
        [b'2', b'3'..=b'9'] | [b'4', _] => 3,
        [b'3', b'1'..=b'6' | b'8' | b'9'] | [b'7' | b'8', _] => 4,
        _ => 2,
    }
}

fn is_cset82(b: u8) -> bool {
    matches!(b, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// Splits a raw element string (GS after each variable-length field, a leading GS tolerated)
/// into (AI, value) pairs.
fn parse_raw(text: &str) -> Result<Vec<(String, String)>, ScanError> {
    if !text.is_ascii() {
        return Err(unrecognised("GS1 data must be ASCII"));
    }
    let bytes = text.as_bytes();
    let mut elements = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == GS_BYTE {
            at += 1;
            continue;
        }
        let rest = &bytes[at..];
        let ai_len = ai_digits(rest.get(..2).unwrap_or(rest)).min(rest.len());
        let ai = ascii(&rest[..ai_len]);
        if !rest[..ai_len].iter().all(u8::is_ascii_digit) || ai_len < 2 {
            return Err(ScanError::UnknownAi { ai });
        }
        let Some((length, _)) = ai_spec(&ai) else {
            return Err(ScanError::UnknownAi { ai });
        };
        let data = &rest[ai_len..];
        let field_end = data
            .iter()
            .position(|&b| b == GS_BYTE)
            .unwrap_or(data.len());
        let value_len = match length {
            Length::Fixed(expected) if field_end < expected => {
                return Err(ScanError::Truncated {
                    ai,
                    expected,
                    got: field_end,
                });
            }
            Length::Fixed(expected) => expected,
            Length::UpTo(max) if field_end > max => {
                return Err(ScanError::FieldTooLong {
                    ai,
                    max,
                    got: field_end,
                });
            }
            Length::UpTo(_) => field_end,
        };
        elements.push((ai, ascii(&data[..value_len])));
        at += ai_len + value_len;
    }
    Ok(elements)
}

/// Splits a bracketed element string, `(01)09506000134352(10)LOT42`, into (AI, value) pairs.
fn parse_bracketed(text: &str) -> Result<Vec<(String, String)>, ScanError> {
    if !text.is_ascii() {
        return Err(unrecognised("GS1 data must be ASCII"));
    }
    let mut elements = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(after_open) = rest.strip_prefix('(') else {
            return Err(unrecognised("bracketed GS1 data must start each AI with ("));
        };
        let Some((ai, after_close)) = after_open.split_once(')') else {
            return Err(unrecognised("unclosed ( in bracketed GS1 data"));
        };
        let Some((length, _)) = ai_spec(ai) else {
            return Err(ScanError::UnknownAi { ai: ai.to_owned() });
        };
        let value_end = after_close.find('(').unwrap_or(after_close.len());
        let (value, next) = after_close.split_at(value_end);
        match length {
            Length::Fixed(expected) if value.len() < expected => {
                return Err(ScanError::Truncated {
                    ai: ai.to_owned(),
                    expected,
                    got: value.len(),
                });
            }
            Length::Fixed(expected) if value.len() > expected => {
                return Err(ScanError::BadValue {
                    ai: ai.to_owned(),
                    reason: format!("expected {expected} characters, has {}", value.len()),
                });
            }
            Length::UpTo(max) if value.len() > max => {
                return Err(ScanError::FieldTooLong {
                    ai: ai.to_owned(),
                    max,
                    got: value.len(),
                });
            }
            _ => {}
        }
        elements.push((ai.to_owned(), value.to_owned()));
        rest = next;
    }
    Ok(elements)
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks and decodes (AI, value) pairs, then says what kind of scan they make.
fn gs1(elements: Vec<(String, String)>, today: NaiveDate) -> Result<Scan, ScanError> {
    if elements.is_empty() {
        return Err(unrecognised("GS1 data without any field"));
    }
    let mut gs1 = Gs1::default();
    let mut seen: Vec<&str> = Vec::new();
    for (ai, value) in &elements {
        // 310n with different n are one quantity: at most one of them.
        let repeated = seen
            .iter()
            .any(|old| *old == ai || (old.starts_with("310") && ai.starts_with("310")));
        if repeated {
            return Err(ScanError::DuplicateAi { ai: ai.clone() });
        }
        seen.push(ai);
        let bad = |reason: &str| ScanError::BadValue {
            ai: ai.clone(),
            reason: reason.to_owned(),
        };
        let Some((_, kind)) = ai_spec(ai) else {
            return Err(ScanError::UnknownAi { ai: ai.clone() });
        };
        if value.is_empty() {
            return Err(bad("empty"));
        }
        match kind {
            Kind::Text if !value.bytes().all(is_cset82) => {
                return Err(bad("character outside the GS1 character set"));
            }
            Kind::Text => {}
            _ if !all_digits(value) => return Err(bad("must be digits")),
            Kind::Checked => verify_check_digit(&format!("AI ({ai})"), value)?,
            Kind::Date | Kind::Digits => {}
        }
        match ai.as_str() {
            "00" => gs1.sscc = Some(value.clone()),
            "01" => gs1.gtin = Some(value.clone()),
            "02" => gs1.content = Some(value.clone()),
            "10" => gs1.lot = Some(value.clone()),
            "11" => gs1.production = Some(date(ai, value, today)?),
            "13" => gs1.packaging = Some(date(ai, value, today)?),
            "15" => gs1.best_before = Some(date(ai, value, today)?),
            "17" => gs1.use_by = Some(date(ai, value, today)?),
            "21" => gs1.serial = Some(value.clone()),
            "37" => gs1.count = Some(value.parse().map_err(|_| bad("not a count"))?),
            _ if ai.starts_with("310") => gs1.net_kg = Some(decimal(ai, value)),
            _ => gs1.internal.push((ai.clone(), value.clone())),
        }
    }
    if seen.contains(&PREP_ITEM_AI) {
        return prep_label_scan(gs1, &seen);
    }
    match gs1.sscc.clone() {
        Some(sscc) => Ok(Scan::TransferUnit { sscc, gs1 }),
        None => Ok(Scan::Gs1(gs1)),
    }
}

fn prep_label_scan(gs1: Gs1, seen: &[&str]) -> Result<Scan, ScanError> {
    let prep_error = |reason: String| ScanError::PrepLabel { reason };
    if let Some(other) = seen
        .iter()
        .find(|ai| !["10", "11", "17", "37", PREP_ITEM_AI].contains(ai))
    {
        return Err(prep_error(format!("unexpected AI ({other})")));
    }
    let missing = |ai: &str, what: &str| prep_error(format!("missing AI ({ai}), the {what}"));
    let item_id = gs1
        .internal
        .into_iter()
        .find_map(|(ai, value)| (ai == PREP_ITEM_AI).then_some(value))
        .ok_or_else(|| missing(PREP_ITEM_AI, "item id"))?;
    let batch_id = gs1.lot.ok_or_else(|| missing("10", "batch id"))?;
    let prepared = gs1
        .production
        .ok_or_else(|| missing("11", "prepared date"))?;
    let use_by = gs1.use_by.ok_or_else(|| missing("17", "use-by date"))?;
    let quantity = gs1.count.ok_or_else(|| missing("37", "quantity"))?;
    if use_by < prepared {
        return Err(prep_error(format!(
            "use-by {use_by} is before prepared {prepared}"
        )));
    }
    Ok(Scan::PrepLabel {
        item_id,
        batch_id,
        prepared,
        use_by,
        quantity,
    })
}

/// A GS1 YYMMDD date (six ASCII digits, already checked).
fn date(ai: &str, value: &str, today: NaiveDate) -> Result<NaiveDate, ScanError> {
    let impossible = || ScanError::ImpossibleDate {
        ai: ai.to_owned(),
        value: value.to_owned(),
    };
    let number = |range: std::ops::Range<usize>| -> Result<u32, ScanError> {
        value
            .get(range)
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(impossible)
    };
    let (yy, month, day) = (number(0..2)?, number(2..4)?, number(4..6)?);
    // GS1 7.12: a year 51–99 ahead of this one is last century's, 50–99 behind next century's.
    let current = today.year();
    let century = current - current.rem_euclid(100);
    let year = match i64::from(yy) - i64::from(current.rem_euclid(100)) {
        51.. => century - 100,
        ..=-50 => century + 100,
        _ => century,
    } + yy as i32; // yy < 100
    let date = if day == 0 {
        // Day 00: the last day of that month.
        (1..=12)
            .contains(&month)
            .then(|| NaiveDate::from_ymd_opt(year, month, 1))
            .flatten()
            .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
            .and_then(|next_first| next_first.pred_opt())
    } else {
        NaiveDate::from_ymd_opt(year, month, day)
    };
    date.ok_or_else(impossible)
}

/// (310n) six digits with n decimals, as a decimal string without leading zeros.
fn decimal(ai: &str, value: &str) -> String {
    let decimals = ai.bytes().last().map_or(0, |b| usize::from(b - b'0'));
    let (whole, fraction) = value.split_at(value.len().saturating_sub(decimals));
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    match fraction {
        "" => whole.to_owned(),
        _ => format!("{whole}.{fraction}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn day(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
    }

    fn today() -> NaiveDate {
        day(2025, 6, 15)
    }

    fn check(raw: &[u8], expected: Result<Scan, ScanError>) {
        assert_eq!(
            parse(raw, today()),
            expected,
            "scan {:?}",
            String::from_utf8_lossy(raw)
        );
    }

    fn product(gtin14: &str) -> Result<Scan, ScanError> {
        Ok(Scan::Product {
            gtin14: gtin14.to_owned(),
        })
    }

    fn gs1(gs1: Gs1) -> Result<Scan, ScanError> {
        Ok(Scan::Gs1(gs1))
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn bad_check(field: &str, expected: char, found: char) -> Result<Scan, ScanError> {
        Err(ScanError::BadCheckDigit {
            field: field.to_owned(),
            expected,
            found,
        })
    }

    fn impossible(ai: &str, value: &str) -> Result<Scan, ScanError> {
        Err(ScanError::ImpossibleDate {
            ai: ai.to_owned(),
            value: value.to_owned(),
        })
    }

    #[test]
    fn retail_codes() {
        check(b"4006381333931", product("04006381333931"));
        check(b"]E04006381333931", product("04006381333931"));
        check(b"]E00036000291452", product("00036000291452"));
        check(b"036000291452", product("00036000291452"));
        check(b"]E0036000291452", product("00036000291452"));
        check(b"96385074", product("00000096385074"));
        check(b"]E496385074", product("00000096385074"));
        check(b"4006381333931\r\n", product("04006381333931"));
        check(b"  96385074\n", product("00000096385074"));
        check(b"4006381333932", bad_check("EAN-13", '1', '2'));
        check(b"]E04006381333932", bad_check("EAN-13", '1', '2'));
        check(b"]E0036000291453", bad_check("UPC-A", '2', '3'));
        check(b"]E496385075", bad_check("EAN-8", '4', '5'));
        // Without a symbology identifier, 8 or 12 digits with a wrong check digit may be a
        // friendly id.
        check(b"96385075", Ok(Scan::FriendlyId("96385075".to_owned())));
        check(
            b"036000291453",
            Ok(Scan::FriendlyId("036000291453".to_owned())),
        );
        check(b"]E4123", Err(unrecognised("]E4 data must be 8 digits")));
    }

    #[test]
    fn tickets_and_friendly_ids() {
        let ticket = |id: &str| {
            Ok(Scan::Ticket {
                order_id: id.to_owned(),
            })
        };
        let friendly = |id: &str| Ok(Scan::FriendlyId(id.to_owned()));
        check(b"ORDER:0193a1b2-7c4d", ticket("0193a1b2-7c4d"));
        check(b"order:A17\r\n", ticket("A17"));
        check(b"]Q1ORDER:A17", ticket("A17"));
        check(
            b"ORDER:",
            Err(unrecognised(
                "a ticket's order id must be 1–64 printable ASCII characters",
            )),
        );
        check(
            b"ORDER:a b",
            Err(unrecognised(
                "a ticket's order id must be 1–64 printable ASCII characters",
            )),
        );
        check(b"A17", friendly("A17"));
        check(b"W-0042", friendly("W-0042"));
        check(b"123", friendly("123"));
        check(b"ABCDEFGHIJKL", friendly("ABCDEFGHIJKL"));
        let neither = || {
            Err(unrecognised(
                "not a ticket, friendly id, product code or GS1 element string",
            ))
        };
        check(b"AB", neither());
        check(b"ABCDEFGHIJKLM", neither());
        check(b"A 17", neither());
        check("CAFÉ".as_bytes(), neither());
    }

    #[test]
    fn thirteen_digits_that_are_gs1() {
        // Not an EAN-13 (the check digit would be 4): (17)251231(37)001.
        check(
            b"1725123137001",
            gs1(Gs1 {
                use_by: Some(day(2025, 12, 31)),
                count: Some(1),
                ..Gs1::default()
            }),
        );
    }

    #[test]
    fn error_messages() {
        let cases = [
            (&b""[..], "empty scan"),
            (&[b'1'; 300][..], "scan too long: 300 bytes, at most 256"),
            (b"\xc3(", "scan is not text: invalid UTF-8 at byte 0"),
            (
                b"(01)09506000134353",
                "bad check digit in AI (01): expected 2, found 3",
            ),
            (b"(17)250230", "impossible date 250230 in AI (17)"),
            (b"(20)1", "unknown GS1 application identifier (20)"),
            (b"(00)1234", "AI (00) truncated: needs 18 characters, has 4"),
            (
                b"(90)ABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "AI (90) too long: at most 30 characters, has 31",
            ),
            (b"(37)1(37)2", "AI (37) appears twice"),
            (
                b"(91)FRIES(10)B1(11)250615(17)250615",
                "bad prep label: missing AI (37), the quantity",
            ),
            (
                b"?!",
                "unrecognised scan: not a ticket, friendly id, product code or GS1 element string",
            ),
        ];
        for (raw, message) in cases {
            let error = parse(raw, today()).expect_err("refused");
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn framing() {
        check(b"", Err(ScanError::Empty));
        check(b" \r\n", Err(ScanError::Empty));
        check(b"]C1", Err(ScanError::Empty));
        check(&[b'1'; 257], Err(ScanError::TooLong { len: 257 }));
        check(b"A1\xff7", Err(ScanError::NotText { at: 2 }));
        assert_eq!(strip_aim(b"]C10109"), (Some("]C1"), &b"0109"[..]));
        assert_eq!(strip_aim(b"]e0x"), (Some("]e0"), &b"x"[..]));
        assert_eq!(strip_aim(b"]CC1"), (None, &b"]CC1"[..]));
        assert_eq!(strip_aim(b"]C"), (None, &b"]C"[..]));
        assert_eq!(strip_aim(b"0109"), (None, &b"0109"[..]));
    }

    #[test]
    fn gs1_element_strings() {
        let gtin_lot_date = Gs1 {
            gtin: s("09506000134352"),
            use_by: Some(day(2025, 12, 31)),
            lot: s("LOT42"),
            ..Gs1::default()
        };
        let same = [
            &b"(01)09506000134352(17)251231(10)LOT42"[..],
            b"]C101095060001343521725123110LOT42",
            b"]d201095060001343521725123110LOT42\r\n",
            b"]Q3010950600013435217251231\x1d10LOT42",
            b"]e0010950600013435217251231\x1d10LOT42\x1d",
            b"\x1d010950600013435217251231\x1d10LOT42",
            b"010950600013435217251231\x1d10LOT42",
            b"01095060001343521725123110LOT42",
        ];
        for raw in same {
            check(raw, gs1(gtin_lot_date.clone()));
        }
        check(
            b"(01)09506000134352(21)SN-7(11)250100(13)240200(15)250231(3103)001250(37)12(90)A1(99)ZZ",
            Err(ScanError::ImpossibleDate {
                ai: "15".to_owned(),
                value: "250231".to_owned(),
            }),
        );
        let everything = Gs1 {
            gtin: s("09506000134352"),
            serial: s("SN-7"),
            production: Some(day(2025, 1, 31)),
            packaging: Some(day(2024, 2, 29)),
            best_before: Some(day(2025, 2, 28)),
            net_kg: s("1.250"),
            count: Some(12),
            internal: vec![
                ("90".to_owned(), "A1".to_owned()),
                ("99".to_owned(), "ZZ".to_owned()),
            ],
            ..Gs1::default()
        };
        check(
            b"(01)09506000134352(21)SN-7(11)250100(13)240200(15)250200(3103)001250(37)12(90)A1(99)ZZ",
            gs1(everything.clone()),
        );
        check(
            b"]C10109506000134352\x1d21SN-7\x1d11250100132402001525020031030012503712\x1d90A1\x1d99ZZ",
            gs1(everything),
        );
        check(
            b"(02)00012345600012(3102)000075",
            gs1(Gs1 {
                content: s("00012345600012"),
                net_kg: s("0.75"),
                ..Gs1::default()
            }),
        );
        check(
            b"(3100)000012(3102)000075",
            Err(ScanError::DuplicateAi {
                ai: "3102".to_owned(),
            }),
        );
        check(
            b"(10)A B",
            Err(ScanError::BadValue {
                ai: "10".to_owned(),
                reason: "character outside the GS1 character set".to_owned(),
            }),
        );
    }

    #[test]
    fn net_weight_decimals() {
        for (ai, value, expected) in [
            ("3100", "000012", "12"),
            ("3101", "000125", "12.5"),
            ("3102", "000075", "0.75"),
            ("3103", "001250", "1.250"),
            ("3105", "123456", "1.23456"),
            ("3100", "000000", "0"),
        ] {
            assert_eq!(decimal(ai, value), expected, "({ai}){value}");
        }
        check(
            b"(3106)000001",
            Err(ScanError::UnknownAi {
                ai: "3106".to_owned(),
            }),
        );
    }

    #[test]
    fn dates() {
        let use_by = |date: NaiveDate| {
            gs1(Gs1 {
                use_by: Some(date),
                ..Gs1::default()
            })
        };
        check(b"(17)251231", use_by(day(2025, 12, 31)));
        check(b"(17)240200", use_by(day(2024, 2, 29)));
        check(b"(17)250200", use_by(day(2025, 2, 28)));
        check(b"(17)250400", use_by(day(2025, 4, 30)));
        check(b"(17)251200", use_by(day(2025, 12, 31)));
        check(b"(17)000229", use_by(day(2000, 2, 29)));
        // The century follows `today` (2025): up to 50 years ahead, 49 back.
        check(b"(17)750101", use_by(day(2075, 1, 1)));
        check(b"(17)760101", use_by(day(1976, 1, 1)));
        check(b"(17)251332", impossible("17", "251332"));
        check(b"(17)250230", impossible("17", "250230"));
        check(b"(17)251301", impossible("17", "251301"));
        check(b"(17)250001", impossible("17", "250001"));
        check(b"(17)250000", impossible("17", "250000"));
        check(b"(11)250431", impossible("11", "250431"));
        assert_eq!(
            parse(b"(17)760101", day(2026, 1, 1)),
            use_by(day(2076, 1, 1))
        );
        assert_eq!(
            parse(b"(17)990101", day(2001, 1, 1)),
            use_by(day(1999, 1, 1))
        );
        assert_eq!(
            parse(b"(17)020101", day(1999, 6, 1)),
            use_by(day(2002, 1, 1))
        );
    }

    #[test]
    fn gs1_errors() {
        let err = |error: ScanError| -> Result<Scan, ScanError> { Err(error) };
        check(b"(01)09506000134353", bad_check("AI (01)", '2', '3'));
        check(b"]C10109506000134353", bad_check("AI (01)", '2', '3'));
        check(b"(00)106141411234567898", bad_check("AI (00)", '7', '8'));
        check(b"(02)00012345600013", bad_check("AI (02)", '2', '3'));
        check(
            b"(01)095060001343(10)A",
            err(ScanError::Truncated {
                ai: "01".to_owned(),
                expected: 14,
                got: 12,
            }),
        );
        check(
            b"]C101095060001343",
            err(ScanError::Truncated {
                ai: "01".to_owned(),
                expected: 14,
                got: 12,
            }),
        );
        check(
            b"]C11725\x1d10A",
            err(ScanError::Truncated {
                ai: "17".to_owned(),
                expected: 6,
                got: 2,
            }),
        );
        check(
            b"(17)2512310",
            err(ScanError::BadValue {
                ai: "17".to_owned(),
                reason: "expected 6 characters, has 7".to_owned(),
            }),
        );
        check(
            b"(20)01",
            err(ScanError::UnknownAi {
                ai: "20".to_owned(),
            }),
        );
        check(
            b"]C1240ABC",
            err(ScanError::UnknownAi {
                ai: "240".to_owned(),
            }),
        );
        check(
            b"]C17003ABC",
            err(ScanError::UnknownAi {
                ai: "7003".to_owned(),
            }),
        );
        check(
            b"]C10109506000134352\x1d",
            gs1(Gs1 {
                gtin: s("09506000134352"),
                ..Gs1::default()
            }),
        );
        check(
            b"]C110ABCDEFGHIJKLMNOPQRSTU",
            err(ScanError::FieldTooLong {
                ai: "10".to_owned(),
                max: 20,
                got: 21,
            }),
        );
        check(
            b"(37)123456789",
            err(ScanError::FieldTooLong {
                ai: "37".to_owned(),
                max: 8,
                got: 9,
            }),
        );
        check(
            b"(37)12A",
            err(ScanError::BadValue {
                ai: "37".to_owned(),
                reason: "must be digits".to_owned(),
            }),
        );
        check(
            b"(10)(37)1",
            err(ScanError::BadValue {
                ai: "10".to_owned(),
                reason: "empty".to_owned(),
            }),
        );
        check(
            b"(10)A(10)B",
            err(ScanError::DuplicateAi {
                ai: "10".to_owned(),
            }),
        );
        check(
            b"(10",
            err(unrecognised("unclosed ( in bracketed GS1 data")),
        );
        check(b"]C1\x1d", err(unrecognised("GS1 data without any field")));
    }

    #[test]
    fn transfer_units() {
        let pallet = Gs1 {
            sscc: s("106141411234567897"),
            content: s("09506000134352"),
            lot: s("L7"),
            count: Some(40),
            use_by: Some(day(2025, 7, 1)),
            ..Gs1::default()
        };
        let expected = Ok(Scan::TransferUnit {
            sscc: "106141411234567897".to_owned(),
            gs1: pallet,
        });
        check(
            b"(00)106141411234567897(02)09506000134352(17)250701(37)40(10)L7",
            expected.clone(),
        );
        check(
            b"]C1001061414112345678970209506000134352172507013740\x1d10L7\r\n",
            expected,
        );
        check(
            b"]C100106141411234567897",
            Ok(Scan::TransferUnit {
                sscc: "106141411234567897".to_owned(),
                gs1: Gs1 {
                    sscc: s("106141411234567897"),
                    ..Gs1::default()
                },
            }),
        );
    }

    #[test]
    fn prep_labels() {
        let (prepared, use_by) = (day(2025, 6, 15), day(2025, 6, 18));
        let raw = prep_label("SAUCE-BBQ", "B0615-3", prepared, use_by, 24).expect("valid label");
        assert_eq!(raw, "112506151725061891SAUCE-BBQ\u{1d}10B0615-3\u{1d}3724");
        let human =
            prep_label_human("SAUCE-BBQ", "B0615-3", prepared, use_by, 24).expect("valid label");
        assert_eq!(human, "(11)250615(17)250618(91)SAUCE-BBQ(10)B0615-3(37)24");
        let expected = Ok(Scan::PrepLabel {
            item_id: "SAUCE-BBQ".to_owned(),
            batch_id: "B0615-3".to_owned(),
            prepared,
            use_by,
            quantity: 24,
        });
        check(raw.as_bytes(), expected.clone());
        check(format!("]d2{raw}\r\n").as_bytes(), expected.clone());
        check(human.as_bytes(), expected.clone());
        check(
            b"(91)SAUCE-BBQ(10)B0615-3(11)250615(17)250618(37)24",
            expected,
        );
        let prep_error = |reason: &str| -> Result<Scan, ScanError> {
            Err(ScanError::PrepLabel {
                reason: reason.to_owned(),
            })
        };
        check(
            b"(91)SAUCE-BBQ(10)B1(11)250615(17)250618",
            prep_error("missing AI (37), the quantity"),
        );
        check(
            b"(91)SAUCE-BBQ(10)B1(11)250615(17)250618(37)1(01)09506000134352",
            prep_error("unexpected AI (01)"),
        );
        check(
            b"(91)SAUCE-BBQ(10)B1(11)250615(17)250614(37)1",
            prep_error("use-by 2025-06-14 is before prepared 2025-06-15"),
        );
        assert_eq!(
            prep_label("", "B1", prepared, use_by, 1),
            Err(ScanError::BadValue {
                ai: "91".to_owned(),
                reason:
                    "item id must be 1–90 GS1 characters (letters, digits, !\"%&'*+,-./:;<=>?_)"
                        .to_owned(),
            })
        );
        assert!(matches!(
            prep_label_human("FRIES", "B(1)", prepared, use_by, 1),
            Err(ScanError::BadValue { ai, .. }) if ai == "10"
        ));
        assert!(matches!(
            prep_label("FRIES", "B1", prepared, use_by, 100_000_000),
            Err(ScanError::BadValue { ai, .. }) if ai == "37"
        ));
        assert!(matches!(
            prep_label("FRIES", "B1", use_by, prepared, 1),
            Err(ScanError::PrepLabel { .. })
        ));
    }

    /// Label characters: GS1 character set 82 without the parentheses.
    const LABEL_CHARS: &[u8] =
        b"!\"%&'*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

    fn random_id(rng: &mut StdRng, max: usize) -> String {
        let len = rng.gen_range(1..=max);
        (0..len)
            .map(|_| char::from(LABEL_CHARS[rng.gen_range(0..LABEL_CHARS.len())]))
            .collect()
    }

    #[test]
    fn random_prep_labels_round_trip() {
        let mut rng = StdRng::seed_from_u64(0x5ca9);
        for _ in 0..2_000 {
            let item_id = random_id(&mut rng, 90);
            let batch_id = random_id(&mut rng, 20);
            // Within the two-digit-year window around `today` (1976–2075).
            let prepared = day(1976, 1, 1) + chrono::Days::new(rng.gen_range(0..365 * 98));
            let use_by = prepared + chrono::Days::new(rng.gen_range(0..400));
            let quantity = rng.gen_range(0..=99_999_999);
            let expected = Ok(Scan::PrepLabel {
                item_id: item_id.clone(),
                batch_id: batch_id.clone(),
                prepared,
                use_by,
                quantity,
            });
            let raw =
                prep_label(&item_id, &batch_id, prepared, use_by, quantity).expect("valid label");
            let human = prep_label_human(&item_id, &batch_id, prepared, use_by, quantity)
                .expect("valid label");
            check(raw.as_bytes(), expected.clone());
            check(human.as_bytes(), expected);
        }
    }

    #[test]
    fn random_frames_never_panic() {
        const BIASED: &[u8] = b"0123456789()]\x1d\r\nC1dQe0E49ORDER:";
        let mut rng = StdRng::seed_from_u64(0xC0FFEE);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = rng.gen_range(0..=300);
            let frame: Vec<u8> = (0..len)
                .map(|_| match rng.gen_range(0..4) {
                    0 => rng.r#gen::<u8>(),
                    _ => BIASED[rng.gen_range(0..BIASED.len())],
                })
                .collect();
            let result = parse(&frame, today());
            if frame.len() > MAX_FRAME_LEN {
                assert_eq!(result, Err(ScanError::TooLong { len: frame.len() }));
            }
            if result.is_ok() {
                parsed += 1;
            }
        }
        // Some random frames do parse (short digit strings as friendly ids, mostly): the
        // generator reaches the accepting paths, not only the error ones.
        assert!(parsed > 0, "no random frame parsed");
    }
}
