//! The Otter side of the relay: webhook signatures and the webhook event format, parsed at the
//! edge into types, plus the conversion into the kitchen protobuf. No IO.

mod event;
mod proto;
mod signature;
mod wire;

pub use event::{
    EventKind, KitchenEventType, Modifier, Order, OrderLine, OrderStatus, ParseError, Promotion,
    WebhookEvent,
};
pub use proto::order_event;
pub use signature::{SecretUsed, SignatureError, WebhookSigner, WebhookVerifier};
