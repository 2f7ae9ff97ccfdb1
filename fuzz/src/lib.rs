//! The fuzz targets' bodies: one function per target, bytes in, a panic on anything wrong.
//! `src/bin/<target>.rs` hands each AFL++ test case to one of them; kept here (and free of the
//! `afl` crate) so a crashing input can be replayed under a debugger or a plain `cargo run`.
//! docs/fuzzing.md says what each covers and how a crash becomes a unit test.

mod http;

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;

use cloud_relay::otter::{OrderStatus, WebhookEvent, order_event};
use edge_agent::{
    kitchen::Kitchen,
    scan::{self, MAX_FRAME_LEN, PrepLabel, Scan},
    scanner::{
        Suffix,
        frame::{Frame, Framer},
    },
    store::{Applied, Store},
};
use kitchen_proto::{OrderEvent, reference::Reference};

pub use http::http_query;

/// 2025-03-14T18:40:00Z, the fixtures' day.
pub const NOW_MS: i64 = 1_741_977_600_000;
const MINUTE_MS: i64 = 60_000;

/// Otter webhook bodies: `WebhookEvent::parse` and, for what it accepts, the conversion to
/// the kitchen's `OrderEvent` (which must encode and decode to itself).
pub fn otter_webhook(data: &[u8]) {
    let received_at = DateTime::<Utc>::from_timestamp_millis(NOW_MS).expect("fixed instant");
    let Ok(event) = WebhookEvent::parse(data, received_at) else {
        return;
    };
    for status in [
        OrderStatus::parse("NEW_ORDER"),
        OrderStatus::parse("CANCELED"),
    ] {
        let order_event = order_event(&event, status, received_at);
        let decoded = OrderEvent::decode(order_event.encode_to_vec().as_slice());
        assert_eq!(decoded.as_ref(), Ok(&order_event), "protobuf round trip");
    }
}

/// Scanner frames: `scan::parse` with `today` taken from the first two bytes (days since
/// 1970, big-endian, so the GS1 two-digit-year window moves), the rest the frame. A prep label
/// it accepts must read back the same when written again, in both forms.
pub fn scan(data: &[u8]) {
    let Some((days, raw)) = data.split_first_chunk::<2>() else {
        return;
    };
    // 1970-01-01 plus up to 65,535 days: the years 1970–2149.
    let today = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
        + chrono::Days::new(u64::from(u16::from_be_bytes(*days)));
    let result = scan::parse(raw, today);
    if raw.len() > MAX_FRAME_LEN {
        assert!(result.is_err(), "an over-long frame parsed: {result:?}");
    }
    let Ok(Scan::PrepLabel {
        item_id,
        batch_id,
        prepared,
        use_by,
        quantity,
    }) = &result
    else {
        return;
    };
    let label = PrepLabel {
        item_id,
        batch_id,
        prepared: *prepared,
        use_by: *use_by,
        quantity: *quantity,
    };
    for written in [label.element_string(), label.human()] {
        let written = written.expect("a label that was read can be written");
        assert_eq!(
            scan::parse(written.as_bytes(), today),
            result,
            "{written:?} does not read back"
        );
    }
}

/// Serial bytes: the first byte picks the suffix and a prefix (none, `S`, `SCN:`), the next
/// ones the read sizes; the rest is the stream. Fed whole and in those chunks, the same frames
/// must come out, none longer than a scan may be.
pub fn framer(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let suffix = [Suffix::Cr, Suffix::Lf, Suffix::Crlf, Suffix::None][usize::from(control & 3)];
    let prefix: &[u8] = [&b""[..], b"S", b"SCN:", b""][usize::from((control >> 2) & 3)];
    let chunk_sizes = usize::from(control >> 4).min(rest.len());
    let (sizes, stream) = rest.split_at(chunk_sizes);

    let frames_of = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut framer = Framer::new(suffix, prefix);
        let mut frames: Vec<Frame> = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut frames);
        }
        let held = framer.pending();
        let last = framer.flush();
        // Held bytes may make no frame (only the prefix); a frame needs held bytes.
        assert!(held || last.is_none(), "flush() made a frame of nothing");
        assert!(!framer.pending(), "a flushed framer holds bytes");
        frames.extend(last);
        frames
    };
    let whole = frames_of(&mut std::iter::once(stream));
    let mut at = 0;
    let mut size = sizes.iter().cycle();
    let mut chunks = std::iter::from_fn(|| {
        if at >= stream.len() {
            return None;
        }
        let len = usize::from(*size.next().unwrap_or(&255)).max(1);
        let chunk = &stream[at..stream.len().min(at + len)];
        at += chunk.len();
        Some(chunk)
    });
    let chunked = frames_of(&mut chunks);
    assert_eq!(whole, chunked, "the read boundaries changed the frames");
    let total: usize = whole.iter().map(|frame| frame.len).sum();
    assert!(total <= stream.len(), "frames longer than the stream");
    for frame in &whole {
        assert!(frame.len > 0, "an empty frame");
        assert!(frame.bytes.len() <= MAX_FRAME_LEN, "a frame not cut");
        assert!(
            frame.bytes.len() == frame.len.min(MAX_FRAME_LEN),
            "a frame's length does not match its bytes: {frame:?}"
        );
    }
}

/// Reference files: `Reference::parse` on the text; what it accepts must be written back by
/// `to_toml` and read again to the same data, and its look-ups must answer.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = Reference::parse(text) else {
        return;
    };
    let written = reference
        .to_toml()
        .expect("a valid reference can be written");
    let again = Reference::parse(&written).expect("what to_toml wrote parses");
    assert_eq!(again.stations, reference.stations);
    assert_eq!(again.stores, reference.stores);
    assert_eq!(again.items, reference.items);
    assert_eq!(again.day_parts, reference.day_parts);
    for item in &reference.items {
        assert!(
            reference.item(&item.id).is_some(),
            "item {} not found",
            item.id
        );
        for day_part in &reference.day_parts {
            let _ = item.par_for(Some(&day_part.id));
        }
        let _ = (item.stocked(), item.shelf_life_days(), item.par_for(None));
        let _ = reference.station_name(&item.station);
    }
    for minute in [0, 359, 360, 719, 720, 1439, 1440, u32::MAX] {
        let _ = reference.day_part_at(minute);
    }
    for store in &reference.stores {
        let _ = reference.brand(&store.store_id);
    }
}

/// The reference the order-event target's kitchen runs with (the kitchen unit tests' own).
static KITCHEN_REFERENCE: LazyLock<Arc<Reference>> = LazyLock::new(|| {
    Arc::new(
        Reference::parse(include_str!(
            "../../edge-agent/tests/fixtures/three_stations.toml"
        ))
        .expect("the fixture is a valid reference"),
    )
});

/// Order events: the first byte says how (bit 0: all in one `apply_all`, as the feed does
/// with a batch of deliveries; else one `apply` each, the clock moving bits 1–7 minutes
/// between them, with a `tick`), the rest is a sequence of length-delimited `OrderEvent`s
/// (at most 16). Events the feed would dead-letter (no event id or order id) are skipped,
/// as its `decode` does. Every event applied must then be a duplicate when it comes again, and
/// the kitchen must still take a new event.
pub fn order_events(data: &[u8]) {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let mut events = Vec::new();
    while !rest.is_empty() && events.len() < 16 {
        let Ok(order_event) = OrderEvent::decode_length_delimited(&mut rest) else {
            break;
        };
        if !order_event.event_id.is_empty() && !order_event.order_id.is_empty() {
            events.push(order_event);
        }
    }
    if events.is_empty() {
        return;
    }
    let store = Store::open_in_memory().expect("in-memory store");
    let horizon_ms = 20 * MINUTE_MS;
    let mut kitchen =
        Kitchen::open(store, KITCHEN_REFERENCE.clone(), horizon_ms, NOW_MS).expect("kitchen");
    let mut now_ms = NOW_MS;
    let mut applied: Vec<&OrderEvent> = Vec::new();
    if control & 1 == 1 {
        // A failed batch rolls back whole; the feed then applies each alone.
        if let Ok(results) = kitchen.apply_all(&events, now_ms) {
            assert_eq!(results.len(), events.len(), "one result per event");
            applied.extend(
                events
                    .iter()
                    .zip(&results)
                    .filter(|(_, result)| matches!(result, Applied::Applied { .. }))
                    .map(|(event, _)| event),
            );
        }
    } else {
        let step_ms = i64::from(control >> 1) * MINUTE_MS;
        for order_event in &events {
            if let Ok(Applied::Applied { .. }) = kitchen.apply(order_event, now_ms) {
                applied.push(order_event);
            }
            now_ms += step_ms;
            let _ = kitchen.tick(now_ms);
        }
    }
    kitchen.take_committed();
    for order_event in applied {
        let again = kitchen.apply(order_event, now_ms);
        assert!(
            matches!(again, Ok(Applied::Duplicate)),
            "event {:?} applied twice: {again:?}",
            order_event.event_id
        );
        assert!(
            kitchen.take_committed().is_empty(),
            "a duplicate logged something"
        );
    }
    let probe = OrderEvent {
        event_id: "fuzz-probe".into(),
        order_id: "fuzz-probe-order".into(),
        store_id: "fuzz-probe-store".into(),
        otter_event_type: "orders.new_order".into(),
        event_type: kitchen_proto::EventType::NewOrder as i32,
        status: kitchen_proto::OrderStatus::NewOrder as i32,
        event_time_ms: now_ms,
        received_at_ms: now_ms,
        has_snapshot: true,
        ..OrderEvent::default()
    };
    if events
        .iter()
        .any(|e| e.event_id == probe.event_id || e.order_id == probe.order_id)
    {
        return;
    }
    let probed = kitchen.apply(&probe, now_ms);
    assert!(
        matches!(probed, Ok(Applied::Applied { .. })),
        "the kitchen no longer takes a new event: {probed:?}"
    );
}
