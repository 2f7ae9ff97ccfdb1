//! The kitchen floor's records and what they carry: allergen warnings found in an order's notes,
//! a cook's acknowledgement of one at a station, and an order marked rush. Pure: no IO.

use serde::{Deserialize, Serialize};

use super::{Ticket, TicketLine};

/// A note on the ticket holding one or more of the kitchen's allergen words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllergenFlag {
    /// The words found, as the reference lists them, in list order.
    pub words: Vec<String>,
    /// The note as the customer wrote it.
    pub note: String,
    /// Where it is: `order` (the customer's note on the order) or the line's name.
    pub on: String,
}

/// `order.allergen_acknowledged`: a cook read the order's allergen warning at a station, which
/// may then bump it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllergenAck {
    pub order_id: String,
    pub station_id: String,
    /// The words the warning named when it was acknowledged.
    pub words: Vec<String>,
    pub device: String,
}

/// `order.rushed`: Expo or a manager marked the order rush (or took the mark off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rush {
    pub order_id: String,
    pub rush: bool,
    pub device: String,
    /// When it was marked (none when taken off): what orders rush tickets among themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rush_at_ms: Option<i64>,
}

/// A line tapped off at a station, on the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineMark {
    pub line_no: i64,
    pub station_id: String,
}

/// Units of an item a tapped line made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemUnits {
    pub item_id: String,
    pub units: u32,
}

/// `order.line_done`: a cook tapped an order's line off at a station (or back on): the units it
/// makes there leave (or rejoin) the station's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDone {
    pub order_id: String,
    /// The line's place in the order (pre-order over lines and modifiers, from 0).
    pub line_no: i64,
    pub station_id: String,
    pub done: bool,
    pub items: Vec<ItemUnits>,
    pub device: String,
}

/// The allergen warnings in a ticket's notes: the customer's note, then each line's and
/// modifier's note, in ticket order. A word matches whole words in any case ("nut" matches
/// "NUT allergy" and "no nuts!" only if "nuts" is listed too; never "donut"); a word of several
/// words matches them in a row.
pub fn allergen_flags(ticket: &Ticket, words: &[String]) -> Vec<AllergenFlag> {
    let phrases: Vec<(String, Vec<String>)> = words
        .iter()
        .map(|word| (word.clone(), tokens(word)))
        .filter(|(_, tokens)| !tokens.is_empty())
        .collect();
    let mut flags = Vec::new();
    let mut check = |note: &str, on: &str| {
        let note_tokens = tokens(note);
        let found: Vec<String> = phrases
            .iter()
            .filter(|(_, phrase)| {
                note_tokens
                    .windows(phrase.len())
                    .any(|window| window == phrase.as_slice())
            })
            .map(|(word, _)| word.clone())
            .collect();
        if !found.is_empty() {
            flags.push(AllergenFlag {
                words: found,
                note: note.to_owned(),
                on: on.to_owned(),
            });
        }
    };
    check(&ticket.customer_note, "order");
    fn walk(lines: &[TicketLine], check: &mut impl FnMut(&str, &str)) {
        for line in lines {
            check(&line.note, &line.name);
            walk(&line.modifiers, check);
        }
    }
    walk(&ticket.lines, &mut check);
    flags
}

/// Lower-cased words: runs of letters and digits.
/// Whether `text` names one of `words` as whole words (case aside; `tree nut` matches
/// "tree-nut", `peanut` does not match "peanuts"): what makes a note an allergy warning on the
/// screens and in reverse print on paper.
pub fn mentions_allergen(text: &str, words: &[String]) -> bool {
    let text = tokens(text);
    words.iter().any(|word| {
        let phrase = tokens(word);
        !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase.as_slice())
    })
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, note: &str, modifiers: Vec<TicketLine>) -> TicketLine {
        TicketLine {
            line_no: 0,
            name: name.into(),
            quantity: 1,
            note: note.into(),
            modifiers,
            item_id: None,
            station_id: None,
            otter_ids: Default::default(),
        }
    }

    #[test]
    fn finds_whole_words_in_every_note() {
        let words: Vec<String> = ["nut", "peanut", "gluten", "tree nut", "shellfish"]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        let ticket = Ticket {
            order_id: "o".into(),
            store_id: "s".into(),
            source: String::new(),
            friendly_id: String::new(),
            status: String::new(),
            customer_name: String::new(),
            customer_note: "Severe PEANUT allergy!".into(),
            received_at_ms: 0,
            lines: vec![
                line("Burger", "no bun, gluten-free please", vec![]),
                line("Salad", "", vec![line("Dressing", "tree nut free", vec![])]),
                line("Donut", "extra donut glaze; nuts are fine", vec![]),
            ],
            bumped_at: vec![],
            ready: false,
            stations: vec![],
            promised_at_ms: 0,
            prep_minutes: None,
            awaiting_accept: false,
            otter_calls: vec![],
            allergens: vec![],
            allergen_acks: vec![],
            rush_at_ms: None,
            lines_done: vec![],
        };
        let flag = |words: &[&str], note: &str, on: &str| AllergenFlag {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            note: note.into(),
            on: on.into(),
        };
        assert_eq!(
            allergen_flags(&ticket, &words),
            vec![
                flag(&["peanut"], "Severe PEANUT allergy!", "order"),
                flag(&["gluten"], "no bun, gluten-free please", "Burger"),
                flag(&["nut", "tree nut"], "tree nut free", "Dressing"),
            ]
        );
        assert_eq!(allergen_flags(&ticket, &[]), vec![]);
    }
}
