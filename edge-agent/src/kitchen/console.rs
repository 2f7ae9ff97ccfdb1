//! The console block for a new order: what each station must make for it (the journal line a
//! manager reads on the box).

use std::collections::BTreeSet;

use kitchen_proto::OrderEvent;

use crate::batch::{self};
use kitchen_proto::reference::UNASSIGNED_STATION;

use super::Kitchen;

impl Kitchen {
    /// The console block for a new order (`order` as it is now): what each station must make
    /// for it.
    pub(super) fn announce(&mut self, event: &OrderEvent, order: &batch::Order) {
        let state = &mut self.state;
        let mut block = String::new();
        let contributions = batch::contributions(order, &state.reference);
        let stations: BTreeSet<&str> = contributions.iter().map(|c| &*c.station_id).collect();
        for station in stations {
            let name = state.reference.station_name(station);
            let items: Vec<String> = contributions
                .iter()
                .filter(|c| c.station_id == station)
                .map(|c| format!("{}× {}", c.units, c.item_name))
                .collect();
            block.push_str(&format!("\n  {name}: {}", items.join(", ")));
        }
        let promised = chrono::DateTime::from_timestamp_millis(order.promised_at_ms())
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default();
        let ticket = if event.friendly_id.is_empty() {
            &event.order_id
        } else {
            &event.friendly_id
        };
        // One block: the header, a line per station, then the structured fields.
        tracing::info!(
            order_id = %event.order_id,
            store_id = %event.store_id,
            source = %event.source,
            "new order #{ticket} due {promised}{block}\n "
        );
        let unknown: Vec<String> = contributions
            .into_iter()
            .filter(|c| c.station_id == UNASSIGNED_STATION)
            .map(|c| c.item_name)
            .filter(|name| state.unassigned_seen.insert(name.clone()))
            .collect();
        for item in unknown {
            tracing::warn!(%item, "order line matches no reference item: counted at station unassigned");
        }
    }
}
