//! An open order as a ticket on a display, with the stations it needs.

use serde::{Deserialize, Serialize};

use crate::batch;

/// An open order as a ticket on a display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub order_id: String,
    pub store_id: String,
    pub source: String,
    pub friendly_id: String,
    pub status: String,
    pub customer_name: String,
    pub customer_note: String,
    pub received_at_ms: i64,
    pub lines: Vec<TicketLine>,
    /// Stations where it was bumped.
    pub bumped_at: Vec<String>,
    /// Every unit done at every station (bumps and completed batches).
    pub ready: bool,
    /// Stations it needs (filled by the caller, which knows the reference data).
    pub stations: Vec<String>,
    /// When it is promised (filled by the caller).
    pub promised_at_ms: i64,
    /// The prep time the kitchen gave Otter, in minutes (none: not accepted yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prep_minutes: Option<u32>,
    /// Its store accepts by hand and nobody has yet: Expo's Accept / Reject (filled by the
    /// caller, which knows the reference data).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_accept: bool,
    /// The relay's calls to Otter for it, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub otter_calls: Vec<super::OtterCall>,
    /// Notes naming the kitchen's allergen words (filled by `annotate`); a station must
    /// acknowledge them before it bumps the order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allergens: Vec<super::AllergenFlag>,
    /// Stations whose cook acknowledged the allergen warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allergen_acks: Vec<String>,
    /// When Expo or a manager marked it rush (none: not rush): it goes first on every screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rush_at_ms: Option<i64>,
    /// Lines tapped off, by station.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines_done: Vec<super::LineMark>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLine {
    /// Its place in the order (pre-order over lines and modifiers, from 0): what a tap-off
    /// names.
    #[serde(default)]
    pub line_no: i64,
    pub name: String,
    pub quantity: u32,
    pub note: String,
    pub modifiers: Vec<TicketLine>,
    /// The reference item and its station this line or modifier resolves to (a top-level line
    /// that resolves to nothing: station `unassigned`); filled by `Ticket::annotate`.
    pub item_id: Option<String>,
    pub station_id: Option<String>,
    /// Otter's item id and SKU, to resolve it.
    #[serde(skip)]
    pub otter_ids: (String, String),
}

impl Ticket {
    /// Fills what needs the reference data: the stations the order needs, when it is
    /// promised, and the item and station of each line and modifier.
    pub fn annotate(
        &mut self,
        order: &batch::Order,
        reference: &kitchen_proto::reference::Reference,
    ) {
        let stations: std::collections::BTreeSet<String> = batch::contributions(order, reference)
            .into_iter()
            .map(|c| c.station_id)
            .collect();
        self.annotate_with(
            stations.into_iter().collect(),
            order.promised_at_ms(),
            reference,
        );
    }

    /// `annotate` from what is already known of the order: the stations it needs (sorted,
    /// each once) and when it is promised.
    pub fn annotate_with(
        &mut self,
        stations: Vec<String>,
        promised_at_ms: i64,
        reference: &kitchen_proto::reference::Reference,
    ) {
        fn walk(
            lines: &mut [TicketLine],
            reference: &kitchen_proto::reference::Reference,
            top: bool,
        ) {
            for line in lines {
                let (otter_id, sku) = &line.otter_ids;
                let resolved = reference.resolve(
                    Some(otter_id.as_str()),
                    Some(sku.as_str()),
                    Some(&line.name),
                );
                match resolved {
                    Some(item) => {
                        line.item_id = Some(item.id.clone());
                        line.station_id = Some(item.station.clone());
                    }
                    None if top => {
                        line.station_id =
                            Some(kitchen_proto::reference::UNASSIGNED_STATION.to_owned());
                    }
                    None => {}
                }
                walk(&mut line.modifiers, reference, false);
            }
        }
        self.stations = stations;
        self.promised_at_ms = promised_at_ms;
        self.awaiting_accept =
            self.prep_minutes.is_none() && !reference.accept_mode(&self.store_id).is_auto();
        walk(&mut self.lines, reference, true);
        self.allergens = super::allergen_flags(self, &reference.floor.allergen_words());
    }
}
