//! The agent's prep label: the GS1 element string it prints (and reads back), and its
//! bracketed human-readable form.

use chrono::{Datelike, NaiveDate};

use super::*;

/// The internal AI that marks the agent's prep label and carries its item id.
pub(super) const PREP_ITEM_AI: &str = "91";

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
pub(super) fn prep_label_fields(
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

pub(super) fn check_prep_label(
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

pub(super) fn yymmdd(date: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year().rem_euclid(100),
        date.month(),
        date.day()
    )
}
