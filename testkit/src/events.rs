//! `OrderEvent`s as the relay publishes them to kitchens, for tests and benchmarks: one builder
//! with presets (`new_order`, `status_update`), so each test sets only what it is about.

use kitchen_proto::{EventType, Fulfillment, LineItem, OrderEvent, OrderStatus};

/// 2025-03-14T18:40:00Z: when the tests' orders happen.
pub const T0_MS: i64 = 1_741_977_600_000;

/// An order line (or a modifier) of `quantity` × `name` with `modifiers` under it; nothing else
/// set.
pub fn line(name: &str, quantity: u32, modifiers: Vec<LineItem>) -> LineItem {
    LineItem {
        name: name.into(),
        quantity,
        modifiers,
        ..LineItem::default()
    }
}

/// As [`line`], with the SKU id that reference items match first.
pub fn sku_line(sku_id: &str, name: &str, quantity: u32, modifiers: Vec<LineItem>) -> LineItem {
    LineItem {
        sku_id: sku_id.into(),
        ..line(name, quantity, modifiers)
    }
}

/// An `orders.new_order` carrying the order's snapshot, as the relay publishes it: event id
/// `ev-{order_id}`, type and status NEW_ORDER, event and receive time [`T0_MS`], sequence 0,
/// no lines yet.
pub fn new_order(store_id: &str, order_id: &str) -> OrderEventBuilder {
    OrderEventBuilder::new(store_id, order_id)
        .event_type(EventType::NewOrder)
        .otter_event_type("orders.new_order")
        .status(OrderStatus::NewOrder)
        .at(T0_MS)
        .with_snapshot()
}

/// A status-only event (`orders.cancel`, `orders.status_update`, ...) moving the order to
/// `status`: event id `ev-{order_id}`, no snapshot, and no event type, times or sequence.
pub fn status_update(
    store_id: &str,
    order_id: &str,
    otter_event_type: &str,
    status: OrderStatus,
) -> OrderEventBuilder {
    OrderEventBuilder::new(store_id, order_id)
        .otter_event_type(otter_event_type)
        .status(status)
}

/// Builds an `OrderEvent` field by field; what is not set keeps its protobuf default.
#[derive(Debug, Clone)]
#[must_use]
pub struct OrderEventBuilder {
    order_event: OrderEvent,
}

impl OrderEventBuilder {
    /// Only the ids: `store_id`, `order_id` and the event id `ev-{order_id}`.
    pub fn new(store_id: &str, order_id: &str) -> Self {
        Self {
            order_event: OrderEvent {
                event_id: format!("ev-{order_id}"),
                store_id: store_id.into(),
                order_id: order_id.into(),
                ..OrderEvent::default()
            },
        }
    }

    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.order_event.event_id = event_id.into();
        self
    }

    pub fn event_type(mut self, event_type: EventType) -> Self {
        self.order_event.event_type = event_type as i32;
        self
    }

    pub fn otter_event_type(mut self, otter_event_type: &str) -> Self {
        self.order_event.otter_event_type = otter_event_type.into();
        self
    }

    /// The per-store sequence number the relay gives the event when it publishes it.
    pub fn sequence(mut self, sequence: u64) -> Self {
        self.order_event.sequence = sequence;
        self
    }

    pub fn friendly_id(mut self, friendly_id: impl Into<String>) -> Self {
        self.order_event.friendly_id = friendly_id.into();
        self
    }

    pub fn status(mut self, status: OrderStatus) -> Self {
        self.order_event.status = status as i32;
        self
    }

    pub fn customer_name(mut self, customer_name: &str) -> Self {
        self.order_event.customer_name = customer_name.into();
        self
    }

    /// The event's time and the time the relay received it, both `ms` since the epoch.
    pub fn at(mut self, ms: i64) -> Self {
        self.order_event.event_time_ms = ms;
        self.order_event.received_at_ms = ms;
        self
    }

    /// Picked up at `ms` since the epoch (the rest of the fulfillment unset).
    pub fn pickup_at(mut self, ms: i64) -> Self {
        self.order_event.fulfillment = Some(Fulfillment {
            pickup_time_ms: Some(ms),
            ..Fulfillment::default()
        });
        self
    }

    /// Marks the event as carrying a full snapshot of the order (its lines are `items`).
    pub fn with_snapshot(mut self) -> Self {
        self.order_event.has_snapshot = true;
        self
    }

    /// Adds a line to the snapshot.
    pub fn item(mut self, item: LineItem) -> Self {
        self.order_event.items.push(item);
        self
    }

    pub fn build(self) -> OrderEvent {
        self.order_event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_order_is_what_the_relay_publishes() {
        let order_event = new_order("s1", "o1")
            .sequence(3)
            .item(line("Fries", 2, vec![]))
            .build();
        assert_eq!(
            order_event,
            OrderEvent {
                event_id: "ev-o1".into(),
                event_type: EventType::NewOrder as i32,
                otter_event_type: "orders.new_order".into(),
                event_time_ms: T0_MS,
                store_id: "s1".into(),
                sequence: 3,
                order_id: "o1".into(),
                status: OrderStatus::NewOrder as i32,
                items: vec![LineItem {
                    name: "Fries".into(),
                    quantity: 2,
                    ..LineItem::default()
                }],
                has_snapshot: true,
                received_at_ms: T0_MS,
                ..OrderEvent::default()
            }
        );
    }

    #[test]
    fn a_status_update_carries_only_ids_and_status() {
        let order_event = status_update("s1", "o1", "orders.cancel", OrderStatus::Canceled)
            .event_id("e9")
            .build();
        assert_eq!(
            order_event,
            OrderEvent {
                event_id: "e9".into(),
                otter_event_type: "orders.cancel".into(),
                store_id: "s1".into(),
                order_id: "o1".into(),
                status: OrderStatus::Canceled as i32,
                ..OrderEvent::default()
            }
        );
    }
}
