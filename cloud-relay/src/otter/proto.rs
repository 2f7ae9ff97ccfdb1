//! Conversion of a parsed Otter event into the kitchen protobuf `OrderEvent`.

use chrono::{DateTime, Utc};
use kitchen_proto as pb;

use super::event::{EventKind, KitchenEventType, Modifier, OrderLine, OrderStatus, WebhookEvent};

/// The `OrderEvent` a kitchen receives for `event`. `status` is the order's status after the
/// event as the relay decided it. `sequence` is left 0: it is taken in the same statement that
/// stores the event, and the publisher sets it from the outbox row.
pub fn order_event(
    event: &WebhookEvent,
    status: OrderStatus,
    received_at: DateTime<Utc>,
) -> pb::OrderEvent {
    let mut order_event = pb::OrderEvent {
        event_id: event.event_id.clone(),
        otter_event_type: event.otter_event_type.clone(),
        event_time_ms: event.event_time.timestamp_millis(),
        store_id: event.store_id.clone(),
        status: status_to_proto(status) as i32,
        received_at_ms: received_at.timestamp_millis(),
        ..Default::default()
    };
    match &event.kind {
        EventKind::Snapshot { event_type, order } => {
            order_event.event_type = event_type_to_proto(*event_type) as i32;
            order_event.order_id = order.id.clone();
            order_event.source = order.source.clone().unwrap_or_default();
            order_event.friendly_id = order.friendly_id.clone().unwrap_or_default();
            order_event.ordered_at_ms = order.ordered_at.map(|t| t.timestamp_millis());
            order_event.fulfillment = Some(pb::Fulfillment {
                mode: fulfillment_mode(order.fulfillment_mode.as_deref()) as i32,
                scheduling_type: scheduling_type(order.scheduling_type.as_deref()) as i32,
                pickup_time_ms: order.pickup_time.map(|t| t.timestamp_millis()),
                estimated_pickup_time_ms: order.estimated_pickup_time.map(|t| t.timestamp_millis()),
                delivery_time_ms: order.delivery_time.map(|t| t.timestamp_millis()),
                table_identifier: order.table_identifier.clone().unwrap_or_default(),
            });
            order_event.estimated_prep_seconds = order.estimated_prep_seconds;
            order_event.customer_name = order.customer_name.clone().unwrap_or_default();
            order_event.customer_note = order.customer_note.clone().unwrap_or_default();
            order_event.items = order.items.iter().map(line_to_proto).collect();
            order_event.has_snapshot = true;
        }
        EventKind::Status {
            event_type,
            order_id,
            cancellation_reason,
            ..
        } => {
            order_event.event_type = event_type_to_proto(*event_type) as i32;
            order_event.order_id = order_id.clone();
            order_event.cancellation_reason = cancellation_reason.clone().unwrap_or_default();
        }
        EventKind::Other => {}
    }
    order_event
}

fn line_to_proto(line: &OrderLine) -> pb::LineItem {
    pb::LineItem {
        line_item_id: line.line_item_id.clone().unwrap_or_default(),
        item_id: line.item_id.clone().unwrap_or_default(),
        sku_id: line.sku_id.clone().unwrap_or_default(),
        name: line.name.clone().unwrap_or_default(),
        quantity: line.quantity,
        note: line.note.clone().unwrap_or_default(),
        station_hint: line.station_hint.clone().unwrap_or_default(),
        price: line.price.clone().unwrap_or_default(),
        modifiers: line.modifiers.iter().map(modifier_to_proto).collect(),
        group_id: String::new(),
        group_name: String::new(),
        category: line.category.clone().unwrap_or_default(),
    }
}

fn modifier_to_proto(modifier: &Modifier) -> pb::LineItem {
    pb::LineItem {
        line_item_id: modifier.line_item_id.clone().unwrap_or_default(),
        item_id: modifier.item_id.clone().unwrap_or_default(),
        sku_id: modifier.sku_id.clone().unwrap_or_default(),
        name: modifier.name.clone().unwrap_or_default(),
        quantity: modifier.quantity,
        note: String::new(),
        station_hint: modifier.station_hint.clone().unwrap_or_default(),
        price: modifier.price.clone().unwrap_or_default(),
        modifiers: modifier.modifiers.iter().map(modifier_to_proto).collect(),
        group_id: modifier.group_id.clone().unwrap_or_default(),
        group_name: modifier.group_name.clone().unwrap_or_default(),
        category: String::new(),
    }
}

fn event_type_to_proto(event_type: KitchenEventType) -> pb::EventType {
    use KitchenEventType as T;
    match event_type {
        T::NewOrder => pb::EventType::NewOrder,
        T::Update => pb::EventType::Update,
        T::Confirm => pb::EventType::Confirm,
        T::OrderReady => pb::EventType::OrderReady,
        T::OrderHandedOff => pb::EventType::OrderHandedOff,
        T::OrderFulfilled => pb::EventType::OrderFulfilled,
        T::CancelOrder => pb::EventType::CancelOrder,
        T::OrderStatusUpdate => pb::EventType::OrderStatusUpdate,
    }
}

fn status_to_proto(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::NewOrder => pb::OrderStatus::NewOrder,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::PickedUp => pb::OrderStatus::PickedUp,
        OrderStatus::Canceled => pb::OrderStatus::Canceled,
        OrderStatus::Fulfilled => pb::OrderStatus::Fulfilled,
        OrderStatus::Prepared => pb::OrderStatus::Prepared,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
        OrderStatus::Unknown => pb::OrderStatus::Unknown,
    }
}

/// Otter's default fulfillment mode is `DELIVERY`.
fn fulfillment_mode(mode: Option<&str>) -> pb::FulfillmentMode {
    match mode.map(str::trim) {
        None | Some("") | Some("DELIVERY") => pb::FulfillmentMode::Delivery,
        Some("RESTAURANT_DELIVERY") => pb::FulfillmentMode::RestaurantDelivery,
        Some("PICKUP") => pb::FulfillmentMode::Pickup,
        Some("DINE_IN") => pb::FulfillmentMode::DineIn,
        Some("DRIVE_THROUGH") => pb::FulfillmentMode::DriveThrough,
        Some(_) => pb::FulfillmentMode::Unspecified,
    }
}

/// A missing scheduling type means `ASAP`.
fn scheduling_type(scheduling: Option<&str>) -> pb::SchedulingType {
    match scheduling.map(str::trim) {
        None | Some("") | Some("ASAP") => pb::SchedulingType::Asap,
        Some("FIXED_TIME") => pb::SchedulingType::FixedTime,
        Some(_) => pb::SchedulingType::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    const NEW_ORDER: &[u8] = include_bytes!("../../tests/fixtures/new_order.json");

    /// The reference order survives JSON → OrderEvent → bytes → OrderEvent with every level of
    /// modifiers intact.
    #[test]
    fn reference_order_round_trips_through_protobuf() {
        let received_at = DateTime::from_timestamp(1_741_977_730, 0).expect("valid");
        let event = WebhookEvent::parse(NEW_ORDER, received_at).expect("valid");
        let mut order_event = order_event(&event, OrderStatus::NewOrder, received_at);
        order_event.sequence = 7;
        let bytes = order_event.encode_to_vec();
        let decoded = pb::OrderEvent::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, order_event);

        assert_eq!(decoded.event_id, "0b6f3c1e-7d2a-4c55-9a3e-5f1d2b8e9a41");
        assert_eq!(decoded.event_type(), pb::EventType::NewOrder);
        assert_eq!(decoded.otter_event_type, "orders.new_order");
        assert_eq!(decoded.event_time_ms, 1_741_977_727_512);
        assert_eq!(
            (decoded.store_id.as_str(), decoded.sequence),
            ("kitchen-bk-01", 7)
        );
        assert_eq!(decoded.order_id, "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13");
        assert_eq!(
            (decoded.source.as_str(), decoded.friendly_id.as_str()),
            ("ubereats", "7K2QX")
        );
        assert_eq!(decoded.status(), pb::OrderStatus::NewOrder);
        assert_eq!(decoded.ordered_at_ms, Some(1_741_977_715_000));
        let fulfillment = decoded.fulfillment.clone().expect("fulfillment");
        assert_eq!(fulfillment.mode(), pb::FulfillmentMode::Delivery);
        assert_eq!(fulfillment.scheduling_type(), pb::SchedulingType::Asap);
        assert_eq!(fulfillment.pickup_time_ms, Some(1_741_978_680_000));
        assert_eq!(
            fulfillment.estimated_pickup_time_ms,
            Some(1_741_978_770_000)
        );
        assert_eq!(fulfillment.delivery_time_ms, Some(1_741_980_000_000));
        assert_eq!(decoded.estimated_prep_seconds, Some(900));
        assert_eq!(decoded.customer_name, "Alex M.");
        assert_eq!(
            decoded.customer_note,
            "Ring the bell, baby sleeping - knock softly"
        );
        assert!(decoded.has_snapshot);

        let names = |items: &[pb::LineItem]| -> Vec<(String, u32, String)> {
            items
                .iter()
                .map(|i| (i.name.clone(), i.quantity, i.price.clone()))
                .collect()
        };
        assert_eq!(
            names(&decoded.items),
            [
                ("Double Smash Burger".into(), 2, "11.5".into()),
                ("Crispy Chicken Tenders (5 pc)".into(), 1, "8.9".into()),
                ("Beef Pho".into(), 1, "13.4".into()),
            ]
        );
        let burger = &decoded.items[0];
        assert_eq!(burger.sku_id, "sku-smash-double");
        assert_eq!(burger.line_item_id, "9e1f0d2c-3b4a-4596-8777-a1b2c3d4e5f6");
        assert_eq!(burger.note, "No pickles please");
        assert_eq!(burger.station_hint, "5247b8a1-77de-4844-b024-cb59fcec59bd");
        assert_eq!(burger.category, "Burgers");
        assert_eq!(
            names(&burger.modifiers),
            [
                ("American Cheese".into(), 1, "0".into()),
                ("Make it a Meal".into(), 1, "4.0".into())
            ]
        );
        let meal = &burger.modifiers[1];
        assert_eq!(meal.group_name, "Upgrade");
        assert_eq!(
            names(&meal.modifiers),
            [
                ("Fries".into(), 1, "0".into()),
                ("Cola".into(), 1, "0".into())
            ]
        );
        assert_eq!(
            names(&meal.modifiers[0].modifiers),
            [("Large".into(), 1, "1.0".into())]
        );
        assert_eq!(
            meal.modifiers[0].modifiers[0].item_id,
            "c0ffee01-0000-4000-8000-000000000004"
        );
        assert_eq!(
            names(&decoded.items[1].modifiers),
            [("Garlic Mayo".into(), 2, "0.5".into())]
        );
        let pho = &decoded.items[2];
        assert_eq!(
            names(&pho.modifiers[1].modifiers),
            [("Extra Hot".into(), 1, "0".into())]
        );
    }
}
