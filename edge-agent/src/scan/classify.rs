//! What a frame's text is: a ticket, a friendly id, a retail product code (check digit
//! verified) or a GS1 element string.

use chrono::NaiveDate;

use super::{
    GS, MAX_ORDER_ID_LEN, Scan, ScanError, all_digits, gs1, parse_bracketed, parse_raw,
    unrecognised,
};

/// Frames without a symbology identifier (or with one that says nothing about the content).
pub(super) fn classify(text: &str, today: NaiveDate) -> Result<Scan, ScanError> {
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

pub(super) fn product(digits: &str, name: &str) -> Result<Scan, ScanError> {
    verify_check_digit(name, digits)?;
    Ok(Scan::Product {
        gtin14: format!("{digits:0>14}"),
    })
}

/// GS1 mod-10 check digit of ASCII digits (the check digit itself excluded).
pub(super) fn check_digit(payload: &[u8]) -> u8 {
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
pub(super) fn verify_check_digit(field: &str, digits: &str) -> Result<(), ScanError> {
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
