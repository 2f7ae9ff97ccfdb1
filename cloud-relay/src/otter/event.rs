//! The Otter webhook event format, parsed leniently (unknown fields ignored, nearly everything
//! optional) into types that cannot hold what the relay would choke on later.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::value::RawValue;

use super::wire::{WireEnvelope, WireItem, WireOrder, WireStatusEntry, WireStatusPayload};

/// Longest `eventId` / `storeId` / order id accepted (Otter documents ≤255 for store ids).
const MAX_ID_LEN: usize = 255;

/// One webhook, parsed. `event_time` falls back to the time received when Otter sent none.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub event_id: String,
    pub otter_event_type: String,
    pub event_time: DateTime<Utc>,
    /// `metadata.storeId`; empty when absent (Otter sends `""` while off-boarding).
    pub store_id: String,
    pub kind: EventKind,
}

/// What an event means to a kitchen.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `orders.new_order` / `orders.update`: a full order snapshot.
    Snapshot {
        event_type: KitchenEventType,
        order: Box<Order>,
    },
    /// An event that moves an order to a status, cancellations included.
    Status {
        event_type: KitchenEventType,
        order_id: String,
        status: OrderStatus,
        cancellation_reason: Option<String>,
    },
    /// Any other family (`menus.*`, `ping.ping`, ...): stored and fanned out raw, never sent to
    /// kitchens.
    Other,
}

impl EventKind {
    pub fn order_id(&self) -> Option<&str> {
        match self {
            EventKind::Snapshot { order, .. } => Some(&order.id),
            EventKind::Status { order_id, .. } => Some(order_id),
            EventKind::Other => None,
        }
    }
}

/// The Otter event types a kitchen acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KitchenEventType {
    NewOrder,
    Update,
    Confirm,
    OrderReady,
    OrderHandedOff,
    OrderFulfilled,
    CancelOrder,
    OrderStatusUpdate,
}

impl KitchenEventType {
    pub fn from_otter(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "orders.new_order" => Self::NewOrder,
            "orders.update" => Self::Update,
            "orders.confirm" => Self::Confirm,
            "orders.order_ready" => Self::OrderReady,
            "orders.order_handed_off" => Self::OrderHandedOff,
            "orders.order_fulfilled" => Self::OrderFulfilled,
            "orders.cancel_order" => Self::CancelOrder,
            "orders.order_status_update" => Self::OrderStatusUpdate,
            _ => return None,
        })
    }
}

/// Otter order statuses; anything unrecognised is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    NewOrder,
    Confirmed,
    PickedUp,
    Canceled,
    Fulfilled,
    Prepared,
    Rejected,
    Unknown,
}

impl OrderStatus {
    pub fn parse(status: &str) -> Self {
        match status.trim().to_ascii_uppercase().as_str() {
            "NEW_ORDER" => Self::NewOrder,
            "CONFIRMED" => Self::Confirmed,
            "PICKED_UP" => Self::PickedUp,
            "CANCELED" | "CANCELLED" => Self::Canceled,
            "FULFILLED" => Self::Fulfilled,
            "PREPARED" => Self::Prepared,
            "REJECTED" => Self::Rejected,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewOrder => "NEW_ORDER",
            Self::Confirmed => "CONFIRMED",
            Self::PickedUp => "PICKED_UP",
            Self::Canceled => "CANCELED",
            Self::Fulfilled => "FULFILLED",
            Self::Prepared => "PREPARED",
            Self::Rejected => "REJECTED",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Canceled or rejected: the kitchen must stop making it.
    pub fn is_cancellation(self) -> bool {
        matches!(self, Self::Canceled | Self::Rejected)
    }
}

/// A full order snapshot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Order {
    pub id: String,
    pub friendly_id: Option<String>,
    pub source: Option<String>,
    pub source_type: Option<String>,
    pub currency_code: Option<String>,
    pub status: Option<OrderStatus>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub customer_name: Option<String>,
    pub customer_note: Option<String>,
    pub fulfillment_mode: Option<String>,
    pub scheduling_type: Option<String>,
    pub pickup_time: Option<DateTime<Utc>>,
    pub estimated_pickup_time: Option<DateTime<Utc>>,
    pub delivery_time: Option<DateTime<Utc>>,
    pub table_identifier: Option<String>,
    pub estimated_prep_seconds: Option<u32>,
    /// Money as decimal strings exactly as sent (`"58.3"`).
    pub subtotal: Option<String>,
    pub discount: Option<String>,
    pub tax: Option<String>,
    pub tip: Option<String>,
    pub delivery_fee: Option<String>,
    pub total: Option<String>,
    pub items: Vec<OrderLine>,
    pub promotions: Vec<Promotion>,
}

/// A top-level order line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderLine {
    pub line_item_id: Option<String>,
    pub item_id: Option<String>,
    pub sku_id: Option<String>,
    pub name: Option<String>,
    pub quantity: u32,
    pub note: Option<String>,
    pub price: Option<String>,
    pub category: Option<String>,
    pub station_hint: Option<String>,
    pub modifiers: Vec<Modifier>,
}

/// A modifier; `quantity` is per unit of its parent. Nests to any depth.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Modifier {
    pub line_item_id: Option<String>,
    pub item_id: Option<String>,
    pub sku_id: Option<String>,
    pub name: Option<String>,
    pub quantity: u32,
    pub price: Option<String>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub station_hint: Option<String>,
    pub modifiers: Vec<Modifier>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Promotion {
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
}

/// Why a body is not an event the relay can store. The message is returned to the sender.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("strings must not contain NUL characters (\\u0000)")]
    Nul,
    #[error("missing or empty {0}")]
    Missing(&'static str),
    #[error("{field} is longer than {MAX_ID_LEN} characters")]
    TooLong { field: &'static str },
    #[error("{field} is not a date-time: {value:?}")]
    BadTime { field: &'static str, value: String },
    #[error("invalid {event_type} payload: {reason}")]
    Payload { event_type: String, reason: String },
}

impl WebhookEvent {
    /// Parses a verified body. `received_at` stands in for a missing `eventTime`.
    pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<Self, ParseError> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => ParseError::NotObject,
                    Err(error) => ParseError::Json(error.to_string()),
                },
            );
        }
        if contains_nul_escape(body) {
            // PostgreSQL text cannot hold NUL: refuse it here rather than fail the commit.
            return Err(ParseError::Nul);
        }
        let envelope: WireEnvelope =
            serde_json::from_slice(body).map_err(|error| ParseError::Json(error.to_string()))?;
        let event_id = required_id(envelope.event_id, "eventId")?;
        let otter_event_type = required_id(envelope.event_type, "eventType")?;
        let event_time = match envelope.event_time.as_deref().map(str::trim) {
            None | Some("") => received_at,
            Some(value) => parse_time(value).ok_or_else(|| ParseError::BadTime {
                field: "eventTime",
                value: value.to_owned(),
            })?,
        };
        let metadata = envelope.metadata;
        let (store_id, resource_id, payload) = match metadata {
            Some(m) => (m.store_id.unwrap_or_default(), m.resource_id, m.payload),
            None => (String::new(), None, None),
        };
        if store_id.len() > MAX_ID_LEN {
            return Err(ParseError::TooLong {
                field: "metadata.storeId",
            });
        }
        let kind = match KitchenEventType::from_otter(&otter_event_type) {
            None => EventKind::Other,
            Some(event_type) => {
                let payload_error = |reason: String| ParseError::Payload {
                    event_type: otter_event_type.clone(),
                    reason,
                };
                let payload = payload.as_deref().map_or("{}", RawValue::get);
                parse_kind(event_type, payload, resource_id).map_err(payload_error)?
            }
        };
        Ok(Self {
            event_id,
            otter_event_type,
            event_time,
            store_id,
            kind,
        })
    }
}

/// Whether a JSON text holds the escape `\u0000` (a NUL in a string), as opposed to an escaped
/// backslash followed by `u0000`.
fn contains_nul_escape(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(at, window)| {
        window.eq_ignore_ascii_case(b"\\u0000")
            && body[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

fn required_id(value: Option<String>, field: &'static str) -> Result<String, ParseError> {
    let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(ParseError::Missing(field));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ParseError::TooLong { field });
    }
    Ok(value)
}

fn parse_kind(
    event_type: KitchenEventType,
    payload: &str,
    resource_id: Option<String>,
) -> Result<EventKind, String> {
    use KitchenEventType as T;
    if matches!(event_type, T::NewOrder | T::Update) {
        let order: WireOrder = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        return Ok(EventKind::Snapshot {
            event_type,
            order: Box::new(convert_order(order)?),
        });
    }
    let wire: WireStatusPayload = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let order_id = wire
        .order_id
        .or_else(|| wire.external_identifiers.and_then(|ids| ids.id))
        .or(resource_id)
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or(
            "no order id (payload.orderId, payload.externalIdentifiers.id or metadata.resourceId)",
        )?;
    if order_id.len() > MAX_ID_LEN {
        return Err(format!("order id is longer than {MAX_ID_LEN} characters"));
    }
    let status = match event_type {
        T::Confirm => OrderStatus::Confirmed,
        T::OrderReady => OrderStatus::Prepared,
        T::OrderHandedOff => OrderStatus::PickedUp,
        T::OrderFulfilled => OrderStatus::Fulfilled,
        T::CancelOrder => OrderStatus::Canceled,
        T::OrderStatusUpdate => latest_status(wire.order_status_history.unwrap_or_default())?,
        T::NewOrder | T::Update => unreachable!("handled above"),
    };
    Ok(EventKind::Status {
        event_type,
        order_id,
        status,
        cancellation_reason: wire.cancellation_reason.filter(|r| !r.is_empty()),
    })
}

/// The newest entry of `orderStatusHistory` (by its `eventTime`, the last one on ties).
fn latest_status(history: Vec<WireStatusEntry>) -> Result<OrderStatus, String> {
    history
        .into_iter()
        .filter_map(|entry| {
            let status = entry.status?;
            let time = entry.event_time.as_deref().and_then(parse_time);
            Some((time, status))
        })
        .enumerate()
        .max_by_key(|(index, (time, _))| (*time, *index))
        .map(|(_, (_, status))| OrderStatus::parse(&status))
        .ok_or_else(|| "orderStatusHistory has no entry with a status".to_owned())
}

fn convert_order(wire: WireOrder) -> Result<Order, String> {
    let ids = wire.external_identifiers.unwrap_or_default();
    let id = ids
        .id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or("missing externalIdentifiers.id")?;
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "externalIdentifiers.id is longer than {MAX_ID_LEN} characters"
        ));
    }
    let fulfillment = wire.fulfillment_info;
    let time = |field: &'static str, value: Option<String>| -> Result<_, String> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| format!("{field} is not a date-time: {v:?}")),
        }
    };
    let (mode, scheduling, pickup, estimated_pickup, delivery, table) = match fulfillment {
        Some(f) => (
            f.fulfillment_mode,
            f.scheduling_type,
            f.pickup_time,
            f.estimated_pickup_time,
            f.delivery_time,
            f.table_identifier,
        ),
        None => Default::default(),
    };
    let totals = wire.order_total;
    let (subtotal, discount, tax, tip, delivery_fee, order_total) = match totals {
        Some(t) => (
            decimal(t.subtotal, "orderTotal.subtotal")?,
            decimal(t.discount, "orderTotal.discount")?,
            decimal(t.tax, "orderTotal.tax")?,
            decimal(t.tip, "orderTotal.tip")?,
            decimal(t.delivery_fee, "orderTotal.deliveryFee")?,
            decimal(t.total, "orderTotal.total")?,
        ),
        None => Default::default(),
    };
    let items = wire
        .items
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, item)| convert_line(item, index))
        .collect::<Result<_, _>>()?;
    let promotions = wire
        .promotions_details
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            Ok(Promotion {
                external_id: p.external_id,
                name: p.name,
                value: decimal(p.value, "promotionsDetails.value")?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Order {
        id,
        friendly_id: ids.friendly_id,
        source: ids.source,
        source_type: ids.source_type,
        currency_code: wire.currency_code,
        status: wire.status.as_deref().map(OrderStatus::parse),
        ordered_at: time("orderedAt", wire.ordered_at)?,
        customer_name: wire.customer.and_then(|c| c.name),
        customer_note: wire.customer_note,
        fulfillment_mode: mode,
        scheduling_type: scheduling,
        pickup_time: time("fulfillmentInfo.pickupTime", pickup)?,
        estimated_pickup_time: time("fulfillmentInfo.estimatedPickupTime", estimated_pickup)?,
        delivery_time: time("fulfillmentInfo.deliveryTime", delivery)?,
        table_identifier: table,
        estimated_prep_seconds: wire
            .preparation_time
            .and_then(|p| p.estimated_preparation_time)
            .and_then(|d| parse_iso_duration_seconds(&d)),
        subtotal,
        discount,
        tax,
        tip,
        delivery_fee,
        total: order_total,
        items,
        promotions,
    })
}

fn convert_line(wire: WireItem, index: usize) -> Result<OrderLine, String> {
    let path = format!("items[{index}]");
    let quantity = quantity(wire.quantity, &path, 1)?;
    let modifiers = convert_modifiers(wire.modifiers, &path)?;
    Ok(OrderLine {
        line_item_id: wire.line_item_id,
        item_id: wire.id,
        sku_id: wire.sku_id,
        name: wire.name,
        quantity,
        note: wire.note,
        price: decimal(wire.price, &format!("{path}.price"))?,
        category: wire.internal_category_name,
        station_hint: wire.station_id,
        modifiers,
    })
}

fn convert_modifiers(wire: Option<Vec<WireItem>>, parent: &str) -> Result<Vec<Modifier>, String> {
    wire.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, m)| {
            let path = format!("{parent}.modifiers[{index}]");
            Ok(Modifier {
                quantity: quantity(m.quantity, &path, 0)?,
                price: decimal(m.price, &format!("{path}.price"))?,
                modifiers: convert_modifiers(m.modifiers, &path)?,
                line_item_id: m.line_item_id,
                item_id: m.id,
                sku_id: m.sku_id,
                name: m.name,
                group_id: m.group_id,
                group_name: m.group_name,
                station_hint: m.station_id,
            })
        })
        .collect()
}

/// Lines need 1..=1000 units; modifiers 0..=1000 per unit of their parent.
fn quantity(value: Option<u32>, path: &str, min: u32) -> Result<u32, String> {
    let value = value.ok_or_else(|| format!("{path}.quantity is missing"))?;
    if !(min..=1000).contains(&value) {
        return Err(format!("{path}.quantity {value} is outside {min}..=1000"));
    }
    Ok(value)
}

/// A JSON number kept as its exact decimal text (never through a float).
fn decimal(value: Option<Box<RawValue>>, field: &str) -> Result<Option<String>, String> {
    let Some(raw) = value else { return Ok(None) };
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Number(_)) => Ok(Some(text.to_owned())),
        _ => Err(format!("{field} is not a number: {text}")),
    }
}

/// RFC 3339, with or without fraction; a time without offset is taken as UTC.
pub(crate) fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Some(time.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
    .map(|naive| naive.and_utc())
}

/// ISO-8601 durations as Otter uses them (`PT15M`, `PT1H30M`, `PT90S`, `P1DT2H`), in seconds.
pub(crate) fn parse_iso_duration_seconds(value: &str) -> Option<u32> {
    let rest = value.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    let mut seconds = 0f64;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800.0), ('D', 86_400.0)][..]),
        (time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            let factor = units.iter().find(|(unit, _)| *unit == c)?.1;
            seconds += number.parse::<f64>().ok()? * factor;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
    }
    (any && seconds <= f64::from(u32::MAX)).then_some(seconds.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_ORDER: &[u8] = include_bytes!("../../tests/fixtures/new_order.json");
    const CANCEL_ORDER: &[u8] = include_bytes!("../../tests/fixtures/cancel_order.json");

    fn received() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
    }

    fn parse(body: &str) -> Result<WebhookEvent, ParseError> {
        WebhookEvent::parse(body.as_bytes(), received())
    }

    #[test]
    fn parses_the_reference_new_order() {
        let event = WebhookEvent::parse(NEW_ORDER, received()).expect("valid");
        assert_eq!(event.event_id, "0b6f3c1e-7d2a-4c55-9a3e-5f1d2b8e9a41");
        assert_eq!(event.store_id, "kitchen-bk-01");
        assert_eq!(
            event.event_time.to_rfc3339(),
            "2025-03-14T18:42:07.512+00:00"
        );
        let EventKind::Snapshot { event_type, order } = event.kind else {
            panic!("not a snapshot");
        };
        assert_eq!(event_type, KitchenEventType::NewOrder);
        assert_eq!(order.id, "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13");
        assert_eq!(order.friendly_id.as_deref(), Some("7K2QX"));
        assert_eq!(order.estimated_prep_seconds, Some(900));
        assert_eq!(order.total.as_deref(), Some("67.46"));
        assert_eq!(order.customer_name.as_deref(), Some("Alex M."));
        assert_eq!(order.items.len(), 3);
        let burger = &order.items[0];
        assert_eq!(
            (burger.quantity, burger.price.as_deref()),
            (2, Some("11.5"))
        );
        let meal = &burger.modifiers[1];
        assert_eq!(meal.name.as_deref(), Some("Make it a Meal"));
        let fries = &meal.modifiers[0];
        assert_eq!(fries.name.as_deref(), Some("Fries"));
        assert_eq!(fries.modifiers[0].name.as_deref(), Some("Large"));
        assert_eq!(fries.modifiers[0].price.as_deref(), Some("1.0"));
        assert_eq!(order.promotions[0].value.as_deref(), Some("5.0"));
    }

    #[test]
    fn parses_the_reference_cancellation() {
        let event = WebhookEvent::parse(CANCEL_ORDER, received()).expect("valid");
        assert_eq!(
            event.kind,
            EventKind::Status {
                event_type: KitchenEventType::CancelOrder,
                order_id: "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13".into(),
                status: OrderStatus::Canceled,
                cancellation_reason: Some("CUSTOMER_CALLED_TO_CANCEL".into()),
            }
        );
    }

    #[test]
    fn rejects_what_cannot_be_stored_with_a_reason() {
        let check = |body: &str, expected: &str| {
            let error = parse(body).expect_err(body);
            assert_eq!(error.to_string(), expected, "{body}");
        };
        check(
            "{",
            "body is not valid JSON: EOF while parsing an object at line 1 column 1",
        );
        check("[]", "body is not a JSON object");
        check(
            r#"{"eventId":"e1","eventType":"ping.ping","x":"a\u0000b"}"#,
            "strings must not contain NUL characters (\\u0000)",
        );
        check(
            "",
            "body is not valid JSON: EOF while parsing a value at line 1 column 0",
        );
        check(r#"{"eventType":"ping.ping"}"#, "missing or empty eventId");
        check(
            r#"{"eventId":" ","eventType":"ping.ping"}"#,
            "missing or empty eventId",
        );
        check(r#"{"eventId":"e1"}"#, "missing or empty eventType");
        check(
            r#"{"eventId":"e1","eventType":"ping.ping","eventTime":"yesterday"}"#,
            "eventTime is not a date-time: \"yesterday\"",
        );
        check(
            r#"{"eventId":"e1","eventType":"orders.new_order","metadata":{"payload":{}}}"#,
            "invalid orders.new_order payload: missing externalIdentifiers.id",
        );
        check(
            r#"{"eventId":"e1","eventType":"orders.new_order","metadata":{"payload":{"externalIdentifiers":{"id":"o1"},"items":[{"name":"x","quantity":0}]}}}"#,
            "invalid orders.new_order payload: items[0].quantity 0 is outside 1..=1000",
        );
        check(
            r#"{"eventId":"e1","eventType":"orders.new_order","metadata":{"payload":{"externalIdentifiers":{"id":"o1"},"items":[{"quantity":1,"price":"free"}]}}}"#,
            "invalid orders.new_order payload: items[0].price is not a number: \"free\"",
        );
        check(
            r#"{"eventId":"e1","eventType":"orders.confirm","metadata":{"payload":{}}}"#,
            "invalid orders.confirm payload: no order id (payload.orderId, payload.externalIdentifiers.id or metadata.resourceId)",
        );
    }

    #[test]
    fn other_families_and_unknown_fields_are_accepted() {
        let event = parse(
            r#"{"eventId":"e1","eventType":"menus.menu_publish","brandNewField":[1,2],"metadata":{"storeId":"s1","payload":{"anything":true}}}"#,
        )
        .expect("valid");
        assert_eq!(event.kind, EventKind::Other);
        assert_eq!(event.event_time, received());
        // An escaped backslash before `u0000` is not a NUL.
        parse(r#"{"eventId":"e2","eventType":"ping.ping","x":"a\\u0000b"}"#).expect("valid");
        let ping = parse(
            r#"{"eventId":"p1","eventType":"ping.ping","metadata":{"payload":{"message":"hi"}}}"#,
        )
        .expect("valid");
        assert_eq!((ping.kind, ping.store_id.as_str()), (EventKind::Other, ""));
    }

    #[test]
    fn status_update_takes_the_newest_history_entry() {
        let event = parse(
            r#"{"eventId":"e1","eventType":"orders.order_status_update","metadata":{"resourceId":"o9","payload":{"orderStatusHistory":[
                {"status":"PREPARED","eventTime":"2025-03-14T18:50:00Z"},
                {"status":"CONFIRMED","eventTime":"2025-03-14T18:45:00Z"}]}}}"#,
        )
        .expect("valid");
        assert_eq!(
            event.kind,
            EventKind::Status {
                event_type: KitchenEventType::OrderStatusUpdate,
                order_id: "o9".into(),
                status: OrderStatus::Prepared,
                cancellation_reason: None,
            }
        );
    }

    #[test]
    fn times_and_durations_parse_leniently() {
        let check_time = |value: &str, expected: Option<&str>| {
            assert_eq!(
                parse_time(value).map(|t| t.to_rfc3339()),
                expected.map(str::to_owned),
                "{value}"
            );
        };
        check_time("2025-03-14T18:41:55Z", Some("2025-03-14T18:41:55+00:00"));
        check_time(
            "2025-03-14T18:41:55.5+01:00",
            Some("2025-03-14T17:41:55.500+00:00"),
        );
        check_time("2025-03-14T18:41:55", Some("2025-03-14T18:41:55+00:00"));
        check_time(
            "2025-03-14 18:41:55.25",
            Some("2025-03-14T18:41:55.250+00:00"),
        );
        check_time("14/03/2025", None);
        let check_duration = |value: &str, expected: Option<u32>| {
            assert_eq!(parse_iso_duration_seconds(value), expected, "{value}");
        };
        check_duration("PT15M", Some(900));
        check_duration("PT1H30M", Some(5400));
        check_duration("PT90S", Some(90));
        check_duration("PT0.5M", Some(30));
        check_duration("P1DT2H", Some(93_600));
        check_duration("PT", None);
        check_duration("15 minutes", None);
        check_duration("PT15X", None);
    }
}
