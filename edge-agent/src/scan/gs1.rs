//! GS1 element strings: raw (FNC1/GS separated) and bracketed, the application identifiers the
//! kitchen reads, their dates and decimals, and the agent's own prep labels among them.

use chrono::{Datelike, NaiveDate};

use super::{
    GS_BYTE, Gs1, PREP_ITEM_AI, Scan, ScanError, all_digits, unrecognised, verify_check_digit,
};

#[derive(Clone, Copy)]
pub(super) enum Length {
    Fixed(usize),
    UpTo(usize),
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// Digits with a GS1 check digit.
    Checked,
    /// YYMMDD, day 00 meaning the last day of the month.
    Date,
    Digits,
    /// GS1 character set 82.
    Text,
}

/// The AIs this parser knows: their length and what they hold.
pub(super) fn ai_spec(ai: &str) -> Option<(Length, Kind)> {
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
pub(super) fn ai_digits(prefix: &[u8]) -> usize {
    match prefix {
        [b'2', b'3'..=b'9'] | [b'4', _] => 3,
        [b'3', b'1'..=b'6' | b'8' | b'9'] | [b'7' | b'8', _] => 4,
        _ => 2,
    }
}

pub(super) fn is_cset82(b: u8) -> bool {
    matches!(b, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// Splits a raw element string (GS after each variable-length field, a leading GS tolerated)
/// into (AI, value) pairs.
pub(super) fn parse_raw(text: &str) -> Result<Vec<(String, String)>, ScanError> {
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
pub(super) fn parse_bracketed(text: &str) -> Result<Vec<(String, String)>, ScanError> {
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

pub(super) fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks and decodes (AI, value) pairs, then says what kind of scan they make.
pub(super) fn gs1(elements: Vec<(String, String)>, today: NaiveDate) -> Result<Scan, ScanError> {
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

pub(super) fn prep_label_scan(gs1: Gs1, seen: &[&str]) -> Result<Scan, ScanError> {
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
    // The label's ids exclude the parentheses GS1 allows (the bracketed form would be
    // ambiguous): a label the agent could not have printed is not one of its labels.
    for (ai, what, value) in [
        (PREP_ITEM_AI, "item id", &item_id),
        ("10", "batch id", &batch_id),
    ] {
        if value.contains(['(', ')']) {
            return Err(prep_error(format!(
                "the {what}, AI ({ai}), must not contain parentheses"
            )));
        }
    }
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
pub(super) fn date(ai: &str, value: &str, today: NaiveDate) -> Result<NaiveDate, ScanError> {
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
pub(super) fn decimal(ai: &str, value: &str) -> String {
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
