//! The kitchen floor's settings in the reference data: what the station display's keys do (bump
//! bars and keyboards), when its timers turn amber and red, how it tells a keyboard-wedge scan
//! from typing, and which words in a note raise the allergen banner. Kitchen-wide in the file's
//! `[floor]` table; a station's entry may set its own keys and timers. Pure: no IO.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reference::{ReferenceError, Station};

/// What a key can do on the station display, in the order the docs list them.
pub const KEY_ACTIONS: &[&str] = &[
    "previous",
    "next",
    "bump",
    "recall",
    "page_left",
    "page_right",
    "all_day",
    "start_batch",
    "complete_batch",
    "acknowledge",
];

/// The default key map: a 10-key bump bar sending the digits 0–9 laid out like a numeric
/// keypad, and a plain keyboard's arrows, Enter, Backspace and page keys (docs/floor.md).
pub const DEFAULT_KEYS: &[(&str, &[&str])] = &[
    ("previous", &["ArrowLeft", "ArrowUp", "4"]),
    ("next", &["ArrowRight", "ArrowDown", "6"]),
    ("bump", &["Enter", "5"]),
    ("recall", &["Backspace", "0"]),
    ("page_left", &["PageUp", "7"]),
    ("page_right", &["PageDown", "9"]),
    ("all_day", &["Tab", "1"]),
    ("start_batch", &["Insert", "2"]),
    ("complete_batch", &["End", "3"]),
    ("acknowledge", &["a", "8"]),
];

/// Words that raise the allergen banner when no `allergen_words` are set: the fourteen
/// allergens EU and UK food law names, the usual spellings, and "allergy" itself.
pub const DEFAULT_ALLERGEN_WORDS: &[&str] = &[
    "allergy",
    "allergic",
    "allergen",
    "anaphylaxis",
    "nut",
    "nuts",
    "peanut",
    "peanuts",
    "gluten",
    "coeliac",
    "celiac",
    "wheat",
    "shellfish",
    "crustacean",
    "shrimp",
    "prawn",
    "crab",
    "lobster",
    "mollusc",
    "fish",
    "egg",
    "eggs",
    "dairy",
    "milk",
    "lactose",
    "soy",
    "soya",
    "sesame",
    "mustard",
    "celery",
    "lupin",
    "sulphite",
    "sulfite",
];

/// Minutes before due when a timer turns amber, and red (0: once past due), by default: the
/// display's colours before they were configurable.
pub const DEFAULT_AMBER_MINUTES: u32 = 5;
pub const DEFAULT_RED_MINUTES: u32 = 0;
/// A keyboard-wedge scan: at least this many characters, each within this many milliseconds of
/// the one before, ended by Enter.
pub const DEFAULT_SCAN_GAP_MS: u32 = 30;
pub const DEFAULT_SCAN_MIN_CHARS: u32 = 3;
/// The longest a timer threshold may be.
pub const MAX_TIMER_MINUTES: u32 = 240;

/// The file's `[floor]` table. Every key is optional; what is absent takes the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Words (whole words, any case) that make a note an allergen warning; replaces the
    /// default list when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allergen_words: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amber_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub red_minutes: Option<u32>,
    /// Keys per action for Expo and every station, over the defaults (an action listed here
    /// replaces its default keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_gap_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_min_chars: Option<u32>,
}

/// A station's own display settings, as stored beside its id and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StationDisplay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amber_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    red_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    keys: BTreeMap<String, Vec<String>>,
}

/// What one display uses: its timers and its whole key map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisplaySettings {
    pub amber_minutes: u32,
    pub red_minutes: u32,
    pub keys: BTreeMap<String, Vec<String>>,
}

impl Floor {
    pub fn is_empty(&self) -> bool {
        *self == Floor::default()
    }

    /// The words in use, lower-cased.
    pub fn allergen_words(&self) -> Vec<String> {
        match &self.allergen_words {
            Some(words) => words.iter().map(|w| w.trim().to_lowercase()).collect(),
            None => DEFAULT_ALLERGEN_WORDS
                .iter()
                .map(|w| (*w).to_owned())
                .collect(),
        }
    }

    pub fn scan_gap_ms(&self) -> u32 {
        self.scan_gap_ms.unwrap_or(DEFAULT_SCAN_GAP_MS)
    }

    pub fn scan_min_chars(&self) -> u32 {
        self.scan_min_chars.unwrap_or(DEFAULT_SCAN_MIN_CHARS)
    }

    /// The settings of Expo (`station` none) or of a station.
    pub fn display(&self, station: Option<&Station>) -> DisplaySettings {
        let mut keys: BTreeMap<String, Vec<String>> = DEFAULT_KEYS
            .iter()
            .map(|(action, keys)| {
                let keys = keys.iter().map(|k| (*k).to_owned()).collect();
                ((*action).to_owned(), keys)
            })
            .collect();
        keys.extend(self.keys.clone());
        if let Some(station) = station {
            keys.extend(station.keys.clone());
        }
        DisplaySettings {
            amber_minutes: station
                .and_then(|s| s.amber_minutes)
                .or(self.amber_minutes)
                .unwrap_or(DEFAULT_AMBER_MINUTES),
            red_minutes: station
                .and_then(|s| s.red_minutes)
                .or(self.red_minutes)
                .unwrap_or(DEFAULT_RED_MINUTES),
            keys,
        }
    }

    /// The table as stored (the cache and PostgreSQL keep it as this TOML text).
    pub fn to_stored(&self) -> Result<String, ReferenceError> {
        toml::to_string(self).map_err(|error| ReferenceError::Parse(error.to_string()))
    }

    /// Reads back what [`Floor::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Result<Self, ReferenceError> {
        toml::from_str(text).map_err(|error| ReferenceError::Parse(format!("floor: {error}")))
    }

    /// Checks the table and every station's settings: known actions, sensible key names, no key
    /// meaning two actions on one display, amber at or before red, words not empty.
    pub fn check(&self, stations: &[Station]) -> Result<(), ReferenceError> {
        let invalid = |message: String| Err(ReferenceError::Invalid(message));
        if let Some(words) = &self.allergen_words {
            for word in words {
                let word = word.trim();
                if word.is_empty() || word.chars().count() > 40 {
                    return invalid(format!(
                        "floor: allergen word {word:?} must be 1 to 40 characters"
                    ));
                }
            }
        }
        match self.scan_gap_ms {
            Some(gap) if !(5..=500).contains(&gap) => {
                return invalid(format!(
                    "floor: scan_gap_ms {gap} must be between 5 and 500"
                ));
            }
            _ => {}
        }
        match self.scan_min_chars {
            Some(n) if !(2..=64).contains(&n) => {
                return invalid(format!(
                    "floor: scan_min_chars {n} must be between 2 and 64"
                ));
            }
            _ => {}
        }
        check_keys("floor", &self.keys)?;
        check_timers("floor", self.amber_minutes, self.red_minutes)?;
        check_display("Expo", &self.display(None))?;
        for station in stations {
            let name = format!("station {:?}", station.id);
            check_keys(&name, &station.keys)?;
            check_timers(&name, station.amber_minutes, station.red_minutes)?;
            check_display(&name, &self.display(Some(station)))?;
        }
        Ok(())
    }
}

impl Station {
    /// The station's display settings as stored beside it (empty text: none).
    pub fn display_to_stored(&self) -> Result<String, ReferenceError> {
        toml::to_string(&StationDisplay {
            amber_minutes: self.amber_minutes,
            red_minutes: self.red_minutes,
            keys: self.keys.clone(),
        })
        .map_err(|error| ReferenceError::Parse(error.to_string()))
    }

    /// A station from its stored columns.
    pub fn from_stored(id: String, name: String, display: &str) -> Result<Self, ReferenceError> {
        let display: StationDisplay = toml::from_str(display).map_err(|error| {
            ReferenceError::Parse(format!("station {id:?} display settings: {error}"))
        })?;
        Ok(Station {
            id,
            name,
            amber_minutes: display.amber_minutes,
            red_minutes: display.red_minutes,
            keys: display.keys,
        })
    }
}

fn check_keys(what: &str, keys: &BTreeMap<String, Vec<String>>) -> Result<(), ReferenceError> {
    for (action, names) in keys {
        if !KEY_ACTIONS.contains(&action.as_str()) {
            return Err(ReferenceError::Invalid(format!(
                "{what}: unknown key action {action:?} (known: {})",
                KEY_ACTIONS.join(", ")
            )));
        }
        for name in names {
            let printable = name.chars().all(|c| !c.is_control());
            if name.is_empty() || name.chars().count() > 32 || !printable {
                return Err(ReferenceError::Invalid(format!(
                    "{what}: key {name:?} for {action:?} must be a key name of 1 to 32 \
                     printable characters"
                )));
            }
        }
    }
    Ok(())
}

fn check_timers(what: &str, amber: Option<u32>, red: Option<u32>) -> Result<(), ReferenceError> {
    for (name, minutes) in [("amber_minutes", amber), ("red_minutes", red)] {
        if let Some(minutes) = minutes
            && minutes > MAX_TIMER_MINUTES
        {
            return Err(ReferenceError::Invalid(format!(
                "{what}: {name} {minutes} is more than {MAX_TIMER_MINUTES}"
            )));
        }
    }
    Ok(())
}

/// One display's merged settings: red no earlier than amber, each key one action.
fn check_display(what: &str, settings: &DisplaySettings) -> Result<(), ReferenceError> {
    if settings.red_minutes > settings.amber_minutes {
        return Err(ReferenceError::Invalid(format!(
            "{what}: red_minutes ({}) must not be more than amber_minutes ({}): a timer turns \
             amber before it turns red",
            settings.red_minutes, settings.amber_minutes
        )));
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (action, names) in &settings.keys {
        for name in names {
            // A single character matches in either case on the display.
            let folded = if name.chars().count() == 1 {
                name.to_lowercase()
            } else {
                name.clone()
            };
            if let Some(other) = seen.insert(folded, action)
                && other != action
            {
                return Err(ReferenceError::Invalid(format!(
                    "{what}: key {name:?} means both {other:?} and {action:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    #[test]
    fn defaults_and_overrides_merge_per_action() {
        let reference = Reference::parse(
            "[floor]\namber_minutes = 8\nkeys = { bump = [\"Enter\", \"b\"] }\n\n\
             [[stations]]\nid = \"fry\"\nname = \"Fryer\"\nred_minutes = 2\n\
             keys = { recall = [\"r\"] }\n\n[[stations]]\nid = \"grill\"\nname = \"Grill\"\n",
        )
        .expect("valid");
        let fry = reference.floor.display(reference.station("fry"));
        assert_eq!((fry.amber_minutes, fry.red_minutes), (8, 2));
        assert_eq!(fry.keys["bump"], ["Enter", "b"]);
        assert_eq!(fry.keys["recall"], ["r"]);
        assert_eq!(fry.keys["next"], ["ArrowRight", "ArrowDown", "6"]);
        let expo = reference.floor.display(None);
        assert_eq!((expo.amber_minutes, expo.red_minutes), (8, 0));
        assert_eq!(expo.keys["recall"], ["Backspace", "0"]);
        assert_eq!(expo.keys.len(), KEY_ACTIONS.len());
        let plain = Floor::default().display(None);
        assert_eq!((plain.amber_minutes, plain.red_minutes), (5, 0));
        assert_eq!(
            Floor::default().allergen_words().len(),
            DEFAULT_ALLERGEN_WORDS.len()
        );
        // Stored and read back whole.
        let text = reference.to_toml().expect("writes");
        let again = Reference::parse(&text).expect("reads back");
        assert_eq!(again.floor, reference.floor);
        assert_eq!(again.stations, reference.stations);
        let fry_stored = reference.stations[0].display_to_stored().expect("writes");
        assert_eq!(
            Station::from_stored("fry".into(), "Fryer".into(), &fry_stored).expect("reads"),
            reference.stations[0]
        );
        let floor_stored = reference.floor.to_stored().expect("writes");
        assert_eq!(
            Floor::from_stored(&floor_stored).expect("reads"),
            reference.floor
        );
    }

    #[test]
    fn refuses_bad_settings_with_a_reason() {
        let check = |text: &str, expected: &str| {
            let error = Reference::parse(text).expect_err(text);
            assert_eq!(error.to_string(), expected);
        };
        check(
            "[floor]\nkeys = { fly = [\"f\"] }",
            "invalid reference: floor: unknown key action \"fly\" (known: previous, next, bump, \
             recall, page_left, page_right, all_day, start_batch, complete_batch, acknowledge)",
        );
        check(
            "[floor]\nkeys = { bump = [\"6\"] }",
            "invalid reference: Expo: key \"6\" means both \"bump\" and \"next\"",
        );
        check(
            "[[stations]]\nid = \"fry\"\nname = \"F\"\nkeys = { recall = [\"A\"] }",
            "invalid reference: station \"fry\": key \"A\" means both \"acknowledge\" and \"recall\"",
        );
        check(
            "[[stations]]\nid = \"fry\"\nname = \"F\"\namber_minutes = 2\nred_minutes = 3",
            "invalid reference: station \"fry\": red_minutes (3) must not be more than \
             amber_minutes (2): a timer turns amber before it turns red",
        );
        check(
            "[floor]\namber_minutes = 500",
            "invalid reference: floor: amber_minutes 500 is more than 240",
        );
        check(
            "[floor]\nallergen_words = [\"nut\", \" \"]",
            "invalid reference: floor: allergen word \"\" must be 1 to 40 characters",
        );
        check(
            "[floor]\nscan_gap_ms = 1",
            "invalid reference: floor: scan_gap_ms 1 must be between 5 and 500",
        );
        check(
            "[floor]\nkeys = { bump = [\"\"] }",
            "invalid reference: floor: key \"\" for \"bump\" must be a key name of 1 to 32 \
             printable characters",
        );
        let error = Reference::parse("[floor]\ncolours = 1").expect_err("unknown key");
        assert!(
            error.to_string().contains("unknown field `colours`"),
            "{error}"
        );
    }
}
