//! Reference data: the kitchen's stations, the stores it serves (→ brand) and the items each
//! station prepares, with the Otter ids, SKUs, names and GTINs that mean each item, and the PAR
//! levels (stock to keep prepped) per item and day part. Loaded from the
//! `REFERENCE_FILE` TOML (format in docs/agent.md), validated, and indexed for matching order
//! lines. No IO beyond reading the file.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveTime, Timelike};

use serde::{Deserialize, Serialize};

pub use crate::floor::Floor;

/// The station that receives order lines no reference item matches.
pub const UNASSIGNED_STATION: &str = "unassigned";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub id: String,
    pub name: String,
    /// Minutes before due when its timers turn amber (none: the `[floor]` value, else 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amber_minutes: Option<u32>,
    /// Minutes before due when they turn red (none: the `[floor]` value, else 0: once late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub red_minutes: Option<u32>,
    /// Its display's keys per action, over the kitchen's (`floor::KEY_ACTIONS`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, Vec<String>>,
}

/// One of the kitchen's Otter stores (a brand's storefront on the delivery platforms): named so it
/// is never mistaken for the agent's SQLite `Store`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtterStore {
    /// Otter `metadata.storeId`.
    pub store_id: String,
    pub brand: String,
    /// How the store's orders are accepted on Otter: `auto` (the box confirms each order once
    /// it is on a screen, with its own prep-time estimate) or `manual` (Expo accepts, adjusts
    /// the time or rejects).
    #[serde(default, skip_serializing_if = "AcceptMode::is_auto")]
    pub accept: AcceptMode,
}

/// How a store's orders are accepted on Otter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptMode {
    #[default]
    Auto,
    Manual,
}

impl AcceptMode {
    pub fn is_auto(&self) -> bool {
        *self == AcceptMode::Auto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AcceptMode::Auto => "auto",
            AcceptMode::Manual => "manual",
        }
    }

    /// From its name (`auto` / `manual`), as PostgreSQL stores it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(AcceptMode::Auto),
            "manual" => Some(AcceptMode::Manual),
            _ => None,
        }
    }
}

/// The most characters an Otter menu entity id may have (Otter's limit on ids it echoes).
pub const MAX_ENTITY_ID_LEN: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub name: String,
    /// Id of the station that prepares it.
    pub station: String,
    pub prep_seconds: u32,
    /// Otter item / modifier ids, SKU ids, names or GTINs that mean this item. Names are
    /// compared case-insensitively after trimming; ids and SKUs exactly; a scanned product code
    /// matches a GTIN written with 8, 12, 13 or 14 digits.
    #[serde(rename = "match", default)]
    pub matches: Vec<String>,
    /// Units to keep prepped when no day part sets another level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub par: Option<u32>,
    /// PAR level per day part id (overrides `par` while that day part runs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub par_by_day_part: BTreeMap<String, u32>,
    /// What one unit of stock is ("1/6 pan", "bag"), for the prep list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Days a prepped unit keeps: a label printed today is used by today + this (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelf_life_days: Option<u32>,
    /// The item's Otter menu entity ids per store id (the ids the kitchen gave Otter for its
    /// menu entities), for 86ing it on Otter. A store missing here: the item is 86'd on the
    /// kitchen's screens only, not on that store's menu.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub otter_entities: BTreeMap<String, Vec<String>>,
}

impl Item {
    /// The PAR level while `day_part` runs (none: the item keeps no stock).
    pub fn par_for(&self, day_part: Option<&str>) -> Option<u32> {
        day_part
            .and_then(|part| self.par_by_day_part.get(part).copied())
            .or(self.par)
    }

    /// Whether the item keeps prepped stock at all.
    pub fn stocked(&self) -> bool {
        self.par.is_some() || !self.par_by_day_part.is_empty()
    }

    pub fn shelf_life_days(&self) -> u32 {
        self.shelf_life_days.unwrap_or(1)
    }
}

/// A named part of the kitchen's day (local time of the box), for PAR levels that change with
/// it. `end` is exclusive and may be earlier than `start` (a part running past midnight).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DayPart {
    pub id: String,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
}

impl DayPart {
    fn minutes(text: &str) -> Option<u32> {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .ok()
            .map(|t| t.hour() * 60 + t.minute())
    }

    /// Whether `minute` (of the day, 0–1439) falls in this part.
    fn contains(&self, minute: u32) -> bool {
        match (Self::minutes(&self.start), Self::minutes(&self.end)) {
            (Some(start), Some(end)) if start <= end => (start..end).contains(&minute),
            (Some(start), Some(end)) => minute >= start || minute < end,
            _ => false,
        }
    }
}

/// The file as written: what `Reference::parse` reads and `Reference::to_toml` writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    #[serde(default, skip_serializing_if = "Floor::is_empty")]
    floor: Floor,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    day_parts: Vec<DayPart>,
    #[serde(default)]
    stations: Vec<Station>,
    #[serde(default)]
    stores: Vec<OtterStore>,
    #[serde(default)]
    items: Vec<Item>,
}

/// Why a reference file was refused. The agent keeps its previous reference when this happens.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("cannot read reference file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid reference file: {0}")]
    Parse(String),
    #[error("invalid reference: {0}")]
    Invalid(String),
}

/// Validated reference data with its match indexes.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    pub stations: Vec<Station>,
    pub stores: Vec<OtterStore>,
    pub items: Vec<Item>,
    pub day_parts: Vec<DayPart>,
    /// The floor's settings: keys, timers, allergen words (`[floor]`).
    pub floor: Floor,
    /// Exact id / SKU → index into `items`.
    by_key: HashMap<String, usize>,
    /// Lower-cased, trimmed name → index into `items`.
    by_name: HashMap<String, usize>,
}

impl Reference {
    pub fn load(path: &std::path::Path) -> Result<Self, ReferenceError> {
        let text = std::fs::read_to_string(path).map_err(|error| ReferenceError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let file: ReferenceFile =
            toml::from_str(text).map_err(|error| ReferenceError::Parse(error.to_string()))?;
        Self::new(file.stations, file.stores, file.items, file.day_parts)?.with_floor(file.floor)
    }

    /// The same reference with these floor settings, checked against its stations.
    pub fn with_floor(self, floor: Floor) -> Result<Self, ReferenceError> {
        floor.check(&self.stations)?;
        Ok(Self { floor, ..self })
    }

    /// The reference in the file format; `Reference::parse` reads it back to an equal value.
    pub fn to_toml(&self) -> Result<String, ReferenceError> {
        toml::to_string(&ReferenceFile {
            floor: self.floor.clone(),
            day_parts: self.day_parts.clone(),
            stations: self.stations.clone(),
            stores: self.stores.clone(),
            items: self.items.clone(),
        })
        .map_err(|error| ReferenceError::Parse(error.to_string()))
    }

    /// Checks that ids are unique, every item's station and day part exists, and no match key
    /// means two items; then indexes the match keys.
    pub fn new(
        stations: Vec<Station>,
        stores: Vec<OtterStore>,
        items: Vec<Item>,
        day_parts: Vec<DayPart>,
    ) -> Result<Self, ReferenceError> {
        let invalid = |message: String| Err(ReferenceError::Invalid(message));
        let mut day_part_ids = std::collections::HashSet::new();
        for part in &day_parts {
            if !day_part_ids.insert(part.id.as_str()) {
                return invalid(format!("day part {:?} is listed twice", part.id));
            }
            for time in [&part.start, &part.end] {
                if DayPart::minutes(time).is_none() {
                    return invalid(format!(
                        "day part {:?}: {time:?} is not a time of day (HH:MM)",
                        part.id
                    ));
                }
            }
        }
        let mut station_ids = std::collections::HashSet::new();
        for station in &stations {
            if station.id.trim().is_empty() {
                return invalid("a station has an empty id".into());
            }
            if station.id == UNASSIGNED_STATION {
                return invalid(format!("station id {UNASSIGNED_STATION:?} is reserved"));
            }
            if !station_ids.insert(station.id.as_str()) {
                return invalid(format!("station {:?} is listed twice", station.id));
            }
        }
        let mut store_ids = std::collections::HashSet::new();
        for store in &stores {
            if !store_ids.insert(store.store_id.as_str()) {
                return invalid(format!("store {:?} is listed twice", store.store_id));
            }
        }
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut item_ids = std::collections::HashSet::new();
        for (index, item) in items.iter().enumerate() {
            if !item_ids.insert(item.id.as_str()) {
                return invalid(format!("item {:?} is listed twice", item.id));
            }
            if !station_ids.contains(item.station.as_str()) {
                return invalid(format!(
                    "item {:?} names station {:?}, which is not listed",
                    item.id, item.station
                ));
            }
            for part in item.par_by_day_part.keys() {
                if !day_part_ids.contains(part.as_str()) {
                    return invalid(format!(
                        "item {:?} has a PAR for day part {part:?}, which is not listed",
                        item.id
                    ));
                }
            }
            if item.shelf_life_days == Some(0) {
                return invalid(format!(
                    "item {:?}: shelf_life_days must be at least 1",
                    item.id
                ));
            }
            for (store, ids) in &item.otter_entities {
                if !store_ids.contains(store.as_str()) {
                    return invalid(format!(
                        "item {:?} has Otter entities for store {store:?}, which is not listed",
                        item.id
                    ));
                }
                if ids.is_empty() {
                    return invalid(format!(
                        "item {:?}: otter_entities for store {store:?} is empty",
                        item.id
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for id in ids {
                    let printable = id.bytes().all(|b| (0x20..0x7f).contains(&b));
                    if id.trim().is_empty() || id.len() > MAX_ENTITY_ID_LEN || !printable {
                        return invalid(format!(
                            "item {:?}: Otter entity id {id:?} for store {store:?} must be 1 to \
                             {MAX_ENTITY_ID_LEN} printable ASCII characters",
                            item.id
                        ));
                    }
                    if !seen.insert(id.as_str()) {
                        return invalid(format!(
                            "item {:?}: Otter entity id {id:?} is listed twice for store {store:?}",
                            item.id
                        ));
                    }
                }
            }
            for key in &item.matches {
                let key = key.trim();
                if key.is_empty() {
                    return invalid(format!("item {:?} has an empty match entry", item.id));
                }
                for (map, key) in [
                    (&mut by_key, key.to_owned()),
                    (&mut by_name, key.to_lowercase()),
                ] {
                    if let Some(&other) = map.get(&key)
                        && other != index
                    {
                        return invalid(format!(
                            "match entry {key:?} means both {:?} and {:?}",
                            items[other].id, item.id
                        ));
                    }
                    map.insert(key, index);
                }
            }
        }
        Floor::default().check(&stations)?;
        Ok(Self {
            stations,
            stores,
            items,
            day_parts,
            floor: Floor::default(),
            by_key,
            by_name,
        })
    }

    /// The item an order line or modifier means: by its Otter id, then its SKU, then its name.
    pub fn resolve(
        &self,
        item_id: Option<&str>,
        sku_id: Option<&str>,
        name: Option<&str>,
    ) -> Option<&Item> {
        let exact = |key: Option<&str>| {
            key.map(str::trim)
                .filter(|k| !k.is_empty())
                .and_then(|k| self.by_key.get(k))
        };
        exact(item_id)
            .or_else(|| exact(sku_id))
            .or_else(|| {
                name.map(|n| n.trim().to_lowercase())
                    .filter(|n| !n.is_empty())
                    .and_then(|n| self.by_name.get(&n))
            })
            .map(|&index| &self.items[index])
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|item| item.id == id)
    }

    /// The item a scanned product code means: a match entry holding the GTIN with 14 digits, or
    /// with the leading zeros dropped down to 13, 12 or 8 digits (EAN-13, UPC-A, EAN-8).
    pub fn item_for_gtin(&self, gtin14: &str) -> Option<&Item> {
        [14, 13, 12, 8]
            .into_iter()
            .filter_map(|len| {
                let cut = gtin14.len().checked_sub(len)?;
                gtin14
                    .get(..cut)
                    .filter(|zeros| zeros.bytes().all(|b| b == b'0'))
                    .and_then(|_| gtin14.get(cut..))
            })
            .find_map(|key| self.by_key.get(key))
            .map(|&index| &self.items[index])
    }

    /// The day part running at `minute` of the day (local time), the first listed if several.
    pub fn day_part_at(&self, minute: u32) -> Option<&DayPart> {
        self.day_parts.iter().find(|part| part.contains(minute))
    }

    /// A station's display name (`Unassigned` for the reserved station, the id if unknown).
    pub fn station_name<'a>(&'a self, id: &'a str) -> &'a str {
        if id == UNASSIGNED_STATION {
            return "Unassigned";
        }
        self.station(id).map_or(id, |s| s.name.as_str())
    }

    pub fn station(&self, id: &str) -> Option<&Station> {
        self.stations.iter().find(|station| station.id == id)
    }

    pub fn store(&self, store_id: &str) -> Option<&OtterStore> {
        self.stores.iter().find(|store| store.store_id == store_id)
    }

    /// How the store's orders are accepted (`auto` for a store not listed).
    pub fn accept_mode(&self, store_id: &str) -> AcceptMode {
        self.store(store_id)
            .map(|store| store.accept)
            .unwrap_or_default()
    }

    pub fn brand(&self, store_id: &str) -> Option<&str> {
        self.stores
            .iter()
            .find(|store| store.store_id == store_id)
            .map(|store| store.brand.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "fry"
name = "Fryer"

[[stores]]
store_id = "kitchen-bk-01"
brand = "Smash Bros"

[[items]]
id = "double-smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 420
match = ["a1c9e2f0-3b4d-4c5e-9f60-718293a4b5c6", "sku-smash-double", "Double Smash Burger"]

[[items]]
id = "fries"
name = "Fries"
station = "fry"
prep_seconds = 180
match = ["Fries"]
"#;

    #[test]
    fn resolves_by_id_then_sku_then_name() {
        let reference = Reference::parse(EXAMPLE).expect("valid");
        let check =
            |id: Option<&str>, sku: Option<&str>, name: Option<&str>, expected: Option<&str>| {
                assert_eq!(
                    reference
                        .resolve(id, sku, name)
                        .map(|item| item.id.as_str()),
                    expected,
                    "{id:?} {sku:?} {name:?}"
                );
            };
        check(
            Some("a1c9e2f0-3b4d-4c5e-9f60-718293a4b5c6"),
            None,
            None,
            Some("double-smash"),
        );
        check(
            Some("unknown"),
            Some("sku-smash-double"),
            None,
            Some("double-smash"),
        );
        check(
            Some("unknown"),
            Some("unknown"),
            Some("  double SMASH burger "),
            Some("double-smash"),
        );
        check(None, None, Some("fries"), Some("fries"));
        check(None, None, Some("No pickles"), None);
        check(Some(""), Some(" "), Some(""), None);
        assert_eq!(reference.brand("kitchen-bk-01"), Some("Smash Bros"));
        assert_eq!(
            reference.station("fry").map(|s| s.name.as_str()),
            Some("Fryer")
        );
    }

    #[test]
    fn par_levels_follow_the_day_part_and_gtins_match_in_any_length() {
        let reference = Reference::parse(
            r#"
[[day_parts]]
id = "lunch"
start = "10:30"
end = "15:00"

[[day_parts]]
id = "late"
start = "22:00"
end = "02:00"

[[stations]]
id = "prep"
name = "Prep"

[[items]]
id = "slaw"
name = "Slaw"
station = "prep"
prep_seconds = 0
match = ["4006381333931", "012345678905", "96385074"]
par = 4
par_by_day_part = { lunch = 10 }
unit = "1/6 pan"
shelf_life_days = 2

[[items]]
id = "buns"
name = "Buns"
station = "prep"
prep_seconds = 0
"#,
        )
        .expect("valid");
        let part = |minute: u32| reference.day_part_at(minute).map(|p| p.id.as_str());
        assert_eq!(part(10 * 60 + 29), None);
        assert_eq!(part(10 * 60 + 30), Some("lunch"));
        assert_eq!(part(14 * 60 + 59), Some("lunch"));
        assert_eq!(part(15 * 60), None);
        assert_eq!(part(23 * 60), Some("late"));
        assert_eq!(part(60 + 59), Some("late"));
        assert_eq!(part(2 * 60), None);
        let slaw = reference.item("slaw").expect("listed");
        assert_eq!(slaw.par_for(Some("lunch")), Some(10));
        assert_eq!(slaw.par_for(Some("late")), Some(4));
        assert_eq!(slaw.par_for(None), Some(4));
        assert_eq!(slaw.shelf_life_days(), 2);
        let buns = reference.item("buns").expect("listed");
        assert_eq!((buns.par_for(Some("lunch")), buns.stocked()), (None, false));
        assert_eq!(buns.shelf_life_days(), 1);
        let by_gtin = |gtin: &str| reference.item_for_gtin(gtin).map(|i| i.id.as_str());
        assert_eq!(
            by_gtin("04006381333931"),
            Some("slaw"),
            "EAN-13 in the list"
        );
        assert_eq!(by_gtin("00012345678905"), Some("slaw"), "UPC-A in the list");
        assert_eq!(by_gtin("00000096385074"), Some("slaw"), "EAN-8 in the list");
        assert_eq!(by_gtin("14006381333938"), None);
        assert_eq!(by_gtin("00000000000000"), None);
    }

    #[test]
    fn accept_mode_and_otter_entities_round_trip() {
        let text = "[[stations]]\nid = \"g\"\nname = \"G\"\n\n[[stores]]\nstore_id = \"s1\"\nbrand = \"B\"\naccept = \"manual\"\n\n[[stores]]\nstore_id = \"s2\"\nbrand = \"C\"\n\n[[items]]\nid = \"a\"\nname = \"A\"\nstation = \"g\"\nprep_seconds = 1\nmatch = []\n\n[items.otter_entities]\ns1 = [\"burger-42\", \"burger-42-combo\"]\n";
        let reference = Reference::parse(text).expect("valid");
        assert_eq!(reference.accept_mode("s1"), AcceptMode::Manual);
        assert_eq!(reference.accept_mode("s2"), AcceptMode::Auto);
        assert_eq!(reference.accept_mode("elsewhere"), AcceptMode::Auto);
        assert_eq!(
            reference.items[0].otter_entities,
            BTreeMap::from([(
                "s1".to_owned(),
                vec!["burger-42".to_owned(), "burger-42-combo".to_owned()]
            )])
        );
        assert_eq!(reference.to_toml().expect("writes"), text);
    }

    #[test]
    fn writes_the_file_format_back() {
        let reference = Reference::parse(EXAMPLE).expect("valid");
        let text = reference.to_toml().expect("serializes");
        let again = Reference::parse(&text).expect("reads back");
        assert_eq!(
            (
                &again.stations,
                &again.stores,
                &again.items,
                &again.day_parts
            ),
            (
                &reference.stations,
                &reference.stores,
                &reference.items,
                &reference.day_parts
            )
        );
        assert!(text.contains("[[items]]"), "{text}");
    }

    #[test]
    fn refuses_inconsistent_files_with_a_reason() {
        let check = |text: &str, expected: &str| {
            let error = Reference::parse(text).expect_err(text);
            assert_eq!(error.to_string(), expected);
        };
        check(
            "[[stations]]\nid = \"grill\"\nname = \"Grill\"\n[[stations]]\nid = \"grill\"\nname = \"Again\"",
            "invalid reference: station \"grill\" is listed twice",
        );
        check(
            "[[items]]\nid = \"x\"\nname = \"X\"\nstation = \"nowhere\"\nprep_seconds = 1",
            "invalid reference: item \"x\" names station \"nowhere\", which is not listed",
        );
        check(
            "[[stations]]\nid = \"g\"\nname = \"G\"\n[[items]]\nid = \"a\"\nname = \"A\"\nstation = \"g\"\nprep_seconds = 1\nmatch = [\"Fries\"]\n[[items]]\nid = \"b\"\nname = \"B\"\nstation = \"g\"\nprep_seconds = 1\nmatch = [\"fries\"]",
            "invalid reference: match entry \"fries\" means both \"a\" and \"b\"",
        );
        check(
            "[[stations]]\nid = \"g\"\nname = \"G\"\n[[items]]\nid = \"a\"\nname = \"A\"\nstation = \"g\"\nprep_seconds = 1\npar_by_day_part = { brunch = 3 }",
            "invalid reference: item \"a\" has a PAR for day part \"brunch\", which is not listed",
        );
        check(
            "[[day_parts]]\nid = \"lunch\"\nstart = \"11\"\nend = \"15:00\"",
            "invalid reference: day part \"lunch\": \"11\" is not a time of day (HH:MM)",
        );
        check(
            "[[stations]]\nid = \"unassigned\"\nname = \"U\"",
            "invalid reference: station id \"unassigned\" is reserved",
        );
        let item = "[[stations]]\nid = \"g\"\nname = \"G\"\n[[stores]]\nstore_id = \"s1\"\nbrand = \"B\"\n[[items]]\nid = \"a\"\nname = \"A\"\nstation = \"g\"\nprep_seconds = 1\n";
        check(
            &format!("{item}otter_entities = {{ s2 = [\"e1\"] }}"),
            "invalid reference: item \"a\" has Otter entities for store \"s2\", which is not listed",
        );
        check(
            &format!("{item}otter_entities = {{ s1 = [] }}"),
            "invalid reference: item \"a\": otter_entities for store \"s1\" is empty",
        );
        check(
            &format!("{item}otter_entities = {{ s1 = [\"e1\", \"e1\"] }}"),
            "invalid reference: item \"a\": Otter entity id \"e1\" is listed twice for store \"s1\"",
        );
        check(
            &format!("{item}otter_entities = {{ s1 = [\"\u{e9}\"] }}"),
            "invalid reference: item \"a\": Otter entity id \"\u{e9}\" for store \"s1\" must be 1 to 255 printable ASCII characters",
        );
        let error = Reference::parse(
            &item.replace("brand = \"B\"", "brand = \"B\"\naccept = \"sometimes\""),
        )
        .expect_err("unknown accept mode");
        assert!(
            error.to_string().contains("unknown variant `sometimes`"),
            "{error}"
        );
        let error = Reference::parse("[[stations]]\nid = \"g\"\nname = \"G\"\ncolour = \"red\"")
            .expect_err("unknown key");
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }
}
