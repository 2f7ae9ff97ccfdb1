//! A kitchen's side of RabbitMQ, made from the cloud (docs/security.md, "The order broker"):
//! its quorum queue `edge.<kitchen>`, dead-letter exchange and queue, a binding to the order
//! exchange per store it serves (from `kitchen.ref_stores`), and its box's broker user, which
//! may only consume that queue. The box declares nothing and binds nothing. `declare` does the
//! AMQP side (also used by the agent's tests, so test queues are the real ones); `admin` is
//! the HTTP management API; `provision` what the `kitchen` subcommands do with both.

mod admin;
mod provision;

pub use admin::{AdminError, BrokerAdmin, Permissions};
pub use provision::{
    Broker, BrokerError, BrokerLogin, BrokerProvisioned, BrokerRemoved, Rebound, kitchen_stores,
};

use kitchen_proto::{edge_dead_letter_exchange, edge_dead_letter_queue, edge_queue};
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// The broker user a kitchen's box logs in as: named like its queue.
pub fn box_user(kitchen_id: &str) -> String {
    edge_queue(kitchen_id)
}

/// What a box may do on the vhost: configure nothing (it only declares its queue passively,
/// which needs no permission), publish nothing, read (consume) its own queue only. Acks, nacks
/// and rejects need no permission; dead-lettering is the queue's own doing.
pub fn box_permissions(kitchen_id: &str) -> Permissions {
    Permissions {
        configure: "^$".into(),
        write: "^$".into(),
        read: format!("^{}$", regex_escape(&edge_queue(kitchen_id))),
    }
}

/// `name` as a regular expression matching exactly itself: every ASCII character but letters,
/// digits and `_` gets a backslash (a backslash before any other character is that character
/// in RabbitMQ's PCRE syntax; before a letter or digit it would not be).
pub fn regex_escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() * 2);
    for c in name.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// [`declare_kitchen_queue`] on a connection of its own to `amqp_url` (as a user with configure
/// rights), with the agent's delivery limit: the cloud's part of a kitchen, for the agent's
/// tests and benchmarks, which start agents that only find their queue.
pub async fn declare_kitchen_queue_at(
    amqp_url: &str,
    exchange: &str,
    kitchen_id: &str,
    stores: &[&str],
) -> Result<(), lapin::Error> {
    let connection =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let declared = declare_kitchen_queue(
        &channel,
        exchange,
        kitchen_id,
        stores,
        kitchen_proto::EDGE_DELIVERY_LIMIT,
    )
    .await;
    let _ = connection.close(200, "declared".into()).await;
    declared
}

/// Declares what kitchen `kitchen_id` consumes, with the arguments the agent has always used (so
/// queues made by older agents are the same queues): the durable direct `exchange`, the
/// kitchen's dead-letter fanout exchange and queue, its durable quorum queue (dead-lettering to
/// that exchange after `delivery_limit` deliveries) and one binding per store. Idempotent;
/// bindings to stores not in `stores` are left alone (`unbind_store` removes one). Needs
/// configure rights on the names and write/read for the bindings: an administrator's channel.
pub async fn declare_kitchen_queue(
    channel: &Channel,
    exchange: &str,
    kitchen_id: &str,
    stores: &[&str],
    delivery_limit: i64,
) -> Result<(), lapin::Error> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    let dlx = edge_dead_letter_exchange(kitchen_id);
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    let dead = edge_dead_letter_queue(kitchen_id);
    channel
        .queue_declare(dead.as_str().into(), durable_queue, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(delivery_limit),
    );
    let queue = edge_queue(kitchen_id);
    channel
        .queue_declare(queue.as_str().into(), durable_queue, arguments)
        .await?;
    for store_id in stores {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                (*store_id).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Removes the binding of kitchen `kitchen_id`'s queue for `store_id` (none: no change).
pub async fn unbind_store(
    channel: &Channel,
    exchange: &str,
    kitchen_id: &str,
    store_id: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_unbind(
            edge_queue(kitchen_id).as_str().into(),
            exchange.into(),
            store_id.into(),
            FieldTable::default(),
        )
        .await
}

/// Removes kitchen `kitchen_id`'s queue (with its messages), dead-letter queue and exchange.
pub async fn delete_kitchen_queue(
    admin: &BrokerAdmin,
    vhost: &str,
    kitchen_id: &str,
) -> Result<bool, AdminError> {
    let deleted = admin.delete_queue(vhost, &edge_queue(kitchen_id)).await?;
    admin
        .delete_queue(vhost, &edge_dead_letter_queue(kitchen_id))
        .await?;
    admin
        .delete_exchange(vhost, &edge_dead_letter_exchange(kitchen_id))
        .await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kitchen_ids_are_escaped_into_exact_patterns() {
        let check = |kitchen: &str, read: &str| {
            assert_eq!(box_permissions(kitchen).read, read, "{kitchen}");
        };
        check("bk-01", r"^edge\.bk\-01$");
        check("bk_01", r"^edge\.bk_01$");
        check("a.*", r"^edge\.a\.\*$");
        check("x|y", r"^edge\.x\|y$");
        check("(a)[b]{c}^$+?", r"^edge\.\(a\)\[b\]\{c\}\^\$\+\?$");
        check(r"back\slash", r"^edge\.back\\slash$");
        check("küche 1", r"^edge\.küche\ 1$");
        let permissions = box_permissions("bk-01");
        assert_eq!(
            (permissions.configure.as_str(), permissions.write.as_str()),
            ("^$", "^$")
        );
        assert_eq!(box_user("bk-01"), "edge.bk-01");
    }
}
