//! The agent's prep label: the GS1 element string it prints (and reads back), and its
//! bracketed human-readable form.

use chrono::{Datelike, NaiveDate};

use super::{GS, ScanError, is_cset82};

/// The internal AI that marks the agent's prep label and carries its item id.
pub(super) const PREP_ITEM_AI: &str = "91";

/// A prep label: what the agent prints on a container of prepped food and reads back when it
/// is scanned in at prep and used at a station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepLabel<'a> {
    /// The reference item (AI 91).
    pub item_id: &'a str,
    /// The batch (AI 10).
    pub batch_id: &'a str,
    /// Prepared on (AI 11).
    pub prepared: NaiveDate,
    /// Use by (AI 17).
    pub use_by: NaiveDate,
    /// Count or portions in the container (AI 37).
    pub quantity: u32,
}

impl PrepLabel<'_> {
    /// The raw GS1 element string (GS separators, no leading FNC1), to print as GS1-128 or GS1
    /// DataMatrix.
    pub fn element_string(&self) -> Result<String, ScanError> {
        self.check()?;
        Ok(self
            .fields()
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
            .to_owned())
    }

    /// The same label in bracketed human-readable form, for the text under the barcode.
    pub fn human(&self) -> Result<String, ScanError> {
        self.check()?;
        Ok(self
            .fields()
            .map(|(ai, value, _)| format!("({ai}){value}"))
            .concat())
    }

    /// The fields in label order: (AI, value, variable length).
    fn fields(&self) -> [(&'static str, String, bool); 5] {
        [
            ("11", yymmdd(self.prepared), false),
            ("17", yymmdd(self.use_by), false),
            (PREP_ITEM_AI, self.item_id.to_owned(), true),
            ("10", self.batch_id.to_owned(), true),
            ("37", self.quantity.to_string(), true),
        ]
    }

    fn check(&self) -> Result<(), ScanError> {
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
        label_text(PREP_ITEM_AI, "item id", self.item_id, 90)?;
        label_text("10", "batch id", self.batch_id, 20)?;
        if self.quantity > 99_999_999 {
            return Err(ScanError::BadValue {
                ai: "37".to_owned(),
                reason: "quantity must be at most 8 digits".to_owned(),
            });
        }
        if self.use_by < self.prepared {
            return Err(ScanError::PrepLabel {
                reason: format!(
                    "use-by {} is before prepared {}",
                    self.use_by, self.prepared
                ),
            });
        }
        Ok(())
    }
}

pub(super) fn yymmdd(date: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year().rem_euclid(100),
        date.month(),
        date.day()
    )
}
