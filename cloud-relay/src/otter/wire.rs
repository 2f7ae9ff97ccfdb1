//! Otter's webhook JSON as it arrives: everything optional, unknown fields ignored. Only
//! `event` reads it, to build the types the rest of the relay uses.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireEnvelope {
    pub(super) event_id: Option<String>,
    pub(super) event_type: Option<String>,
    pub(super) event_time: Option<String>,
    pub(super) metadata: Option<WireMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMetadata {
    pub(super) store_id: Option<String>,
    pub(super) resource_id: Option<String>,
    pub(super) payload: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireExternalIdentifiers {
    pub(super) id: Option<String>,
    pub(super) friendly_id: Option<String>,
    pub(super) source: Option<String>,
    pub(super) source_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireOrder {
    pub(super) external_identifiers: Option<WireExternalIdentifiers>,
    pub(super) currency_code: Option<String>,
    pub(super) status: Option<String>,
    pub(super) ordered_at: Option<String>,
    pub(super) customer_note: Option<String>,
    pub(super) customer: Option<WireCustomer>,
    #[serde(default)]
    pub(super) items: Option<Vec<WireItem>>,
    pub(super) fulfillment_info: Option<WireFulfillment>,
    pub(super) preparation_time: Option<WirePreparationTime>,
    pub(super) order_total: Option<WireOrderTotal>,
    pub(super) promotions_details: Option<Vec<WirePromotion>>,
}

#[derive(Deserialize)]
pub(super) struct WireCustomer {
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireItem {
    pub(super) quantity: Option<u32>,
    pub(super) id: Option<String>,
    pub(super) line_item_id: Option<String>,
    pub(super) sku_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) note: Option<String>,
    pub(super) price: Option<Box<RawValue>>,
    pub(super) internal_category_name: Option<String>,
    pub(super) station_id: Option<String>,
    pub(super) group_id: Option<String>,
    pub(super) group_name: Option<String>,
    pub(super) modifiers: Option<Vec<WireItem>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireFulfillment {
    pub(super) fulfillment_mode: Option<String>,
    pub(super) scheduling_type: Option<String>,
    pub(super) pickup_time: Option<String>,
    pub(super) estimated_pickup_time: Option<String>,
    pub(super) delivery_time: Option<String>,
    pub(super) table_identifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WirePreparationTime {
    pub(super) estimated_preparation_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireOrderTotal {
    pub(super) subtotal: Option<Box<RawValue>>,
    pub(super) discount: Option<Box<RawValue>>,
    pub(super) tax: Option<Box<RawValue>>,
    pub(super) tip: Option<Box<RawValue>>,
    pub(super) delivery_fee: Option<Box<RawValue>>,
    pub(super) total: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WirePromotion {
    pub(super) external_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) value: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireStatusPayload {
    pub(super) order_id: Option<String>,
    pub(super) external_identifiers: Option<WireExternalIdentifiers>,
    pub(super) cancellation_reason: Option<String>,
    pub(super) order_status_history: Option<Vec<WireStatusEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireStatusEntry {
    pub(super) status: Option<String>,
    pub(super) event_time: Option<String>,
}
