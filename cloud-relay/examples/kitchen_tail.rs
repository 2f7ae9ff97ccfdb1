//! Stands in for a kitchen until the edge agent consumes orders: declares a durable queue bound
//! to `structured_order_data` for the given stores and prints every `OrderEvent` it receives.
//!
//! `cargo run -p cloud-relay --example kitchen_tail -- QUEUE STORE_ID...` (AMQP_URL from the
//! environment). Acks each message after printing it.

use futures_util::StreamExt;
use kitchen_proto::OrderEvent;
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use prost::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let queue = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: kitchen_tail QUEUE STORE_ID..."))?;
    let stores: Vec<String> = args.collect();
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let exchange = kitchen_proto::ORDER_EXCHANGE;
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for store in &stores {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                store.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    println!("kitchen_tail: queue {queue} bound to {exchange} for {stores:?}, waiting for orders");
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "kitchen_tail".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        match OrderEvent::decode(delivery.data.as_slice()) {
            Ok(event) => {
                let ticket = if event.friendly_id.is_empty() {
                    String::new()
                } else {
                    format!(" ticket {}", event.friendly_id)
                };
                println!(
                    "store {} seq {:>3}  {:<20} order {}{ticket}  status {}",
                    event.store_id,
                    event.sequence,
                    event.otter_event_type,
                    event.order_id,
                    event.status().as_str_name(),
                );
                print_items(&event.items, 1);
                if !event.cancellation_reason.is_empty() {
                    println!("      cancellation reason: {}", event.cancellation_reason);
                }
            }
            Err(error) => println!("undecodable message: {error}"),
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

fn print_items(items: &[kitchen_proto::LineItem], depth: usize) {
    for item in items {
        let note = if item.note.is_empty() {
            String::new()
        } else {
            format!("  \"{}\"", item.note)
        };
        println!(
            "{:indent$}{} x {}{note}",
            "",
            item.quantity,
            item.name,
            indent = depth * 4 + 2
        );
        print_items(&item.modifiers, depth + 1);
    }
}
