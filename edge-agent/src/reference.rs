//! Reference data: the kitchen's stations, the stores it serves (→ brand) and the items each
//! station prepares, with the Otter ids, SKUs and names that mean each item. Loaded from the
//! `REFERENCE_FILE` TOML (format in docs/agent.md), validated, and indexed for matching order
//! lines. No IO beyond reading the file.

use std::collections::HashMap;

use serde::Deserialize;

/// The station that receives order lines no reference item matches.
pub const UNASSIGNED_STATION: &str = "unassigned";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Otter `metadata.storeId`.
    pub store_id: String,
    pub brand: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub name: String,
    /// Id of the station that prepares it.
    pub station: String,
    pub prep_seconds: u32,
    /// Otter item / modifier ids, SKU ids or names that mean this item. Names are compared
    /// case-insensitively after trimming; ids and SKUs exactly.
    #[serde(rename = "match", default)]
    pub matches: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    #[serde(default)]
    stations: Vec<Station>,
    #[serde(default)]
    stores: Vec<Store>,
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
    pub stores: Vec<Store>,
    pub items: Vec<Item>,
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
        Self::new(file.stations, file.stores, file.items)
    }

    /// Checks that ids are unique, every item's station exists, and no match key means two
    /// items; then indexes the match keys.
    pub fn new(
        stations: Vec<Station>,
        stores: Vec<Store>,
        items: Vec<Item>,
    ) -> Result<Self, ReferenceError> {
        let invalid = |message: String| Err(ReferenceError::Invalid(message));
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
        Ok(Self {
            stations,
            stores,
            items,
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
            "[[stations]]\nid = \"unassigned\"\nname = \"U\"",
            "invalid reference: station id \"unassigned\" is reserved",
        );
        let error = Reference::parse("[[stations]]\nid = \"g\"\nname = \"G\"\ncolour = \"red\"")
            .expect_err("unknown key");
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }
}
