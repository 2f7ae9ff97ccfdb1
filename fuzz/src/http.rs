//! The `http_query` target: the agent's LAN router driven in process, one request per test
//! case. Reads only (GET and HEAD): a write changes the store, and a crash that needs the
//! writes of earlier test cases could not be replayed from one input.

use std::{
    path::PathBuf,
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, Uri, header},
};
use tower::ServiceExt;

use edge_agent::{App, Config, STORE_FILE, kitchen::Kitchen, store::Store};
use kitchen_proto::{
    EventType, Fulfillment, LineItem, OrderEvent, OrderStatus, reference::Reference,
};

/// Device tokens paired before the agent starts (opaque; at least 32 bytes).
const MANAGER_TOKEN: &str = "fuzz-manager-token-0123456789abcdef0123456789";
const COOK_TOKEN: &str = "fuzz-cook-grill-token-0123456789abcdef01234567";
const DISPLAY_TOKEN: &str = "fuzz-display-token-0123456789abcdef0123456789";

/// A built agent in this thread (built on first use, so in the forked child, where its
/// threads live) and the runtime its router runs on.
struct Agent {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// Kept so the store writer and the data directory stay.
    _app: App,
}

/// `KITCHEN_FUZZ_DEBUG=1`: print each answer's status (replaying an input by hand).
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("KITCHEN_FUZZ_DEBUG").is_some());

thread_local! {
    static AGENT: Agent = build();
}

/// The first byte: bit 0 HEAD (else GET), bits 1–2 the caller (manager, cook at `grill`,
/// display, no token); the rest is the request target (path and query, `/` added in front if
/// missing). Targets hyper would refuse are skipped. The request must be answered (no panic)
/// and never with a 500.
pub fn http_query(data: &[u8]) {
    let Some((&control, target)) = data.split_first() else {
        return;
    };
    let target = if target.first() == Some(&b'/') {
        target.to_vec()
    } else {
        [&b"/"[..], target].concat()
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let method = if control & 1 == 1 {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    let token = [
        Some(MANAGER_TOKEN),
        Some(COOK_TOKEN),
        Some(DISPLAY_TOKEN),
        None,
    ][usize::from((control >> 1) & 3)];
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).expect("a valid request");
    let response = AGENT
        .with(|agent| {
            agent
                .runtime
                .block_on(agent.router.clone().oneshot(request))
        })
        .expect("the router is infallible");
    if *DEBUG {
        eprintln!("{} {}", response.status(), String::from_utf8_lossy(data));
    }
    assert_ne!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "a 500 for {data:?}"
    );
}

fn build() -> Agent {
    let data_dir = data_dir();
    let reference_file = data_dir.join("reference.toml");
    let reference_text = include_str!("../../edge-agent/reference.example.toml");
    std::fs::write(&reference_file, reference_text).expect("write the reference");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    seed_orders(&data_dir, reference_text, now_ms);
    for (role, name, station, token) in [
        ("manager", "fuzz-manager", None, MANAGER_TOKEN),
        ("cook", "fuzz-cook", Some("grill"), COOK_TOKEN),
        ("display", "fuzz-display", None, DISPLAY_TOKEN),
    ] {
        edge_agent::pairing::pair_with_token(&data_dir, role, name, station, token)
            .expect("pair a device");
    }
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir,
        reference_file: Some(reference_file),
        // Not provisioned: no feed and no sync; the LAN is served from SQLite.
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let app = runtime
        .block_on(App::build(config))
        .expect("the agent builds");
    let router = app.router();
    Agent {
        runtime,
        router,
        _app: app,
    }
}

/// A data directory of this process's own, under the temporary directory; those of fuzzing
/// processes that have gone are removed.
fn data_dir() -> PathBuf {
    let root = std::env::temp_dir().join("kitchen-fuzz-http");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let gone = entry
                .file_name()
                .to_str()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists());
            if gone {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the data directory");
    dir
}

/// Open orders for the displays to show: a burger meal at the grill and fryer, a cola, one
/// item the reference does not know, a scheduled order and a cancelled one.
fn seed_orders(data_dir: &std::path::Path, reference_text: &str, now_ms: i64) {
    let line = |sku_id: &str, name: &str, quantity: u32, modifiers: Vec<LineItem>| LineItem {
        sku_id: sku_id.into(),
        name: name.into(),
        quantity,
        modifiers,
        ..LineItem::default()
    };
    let order = |n: u64, items: Vec<LineItem>, pickup_in_min: i64| OrderEvent {
        event_id: format!("e{n}"),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: now_ms,
        store_id: "kitchen-bk-01".into(),
        sequence: n,
        order_id: format!("o{n}"),
        friendly_id: format!("A{n}"),
        status: OrderStatus::NewOrder as i32,
        fulfillment: Some(Fulfillment {
            pickup_time_ms: Some(now_ms + pickup_in_min * 60_000),
            ..Fulfillment::default()
        }),
        items,
        has_snapshot: true,
        received_at_ms: now_ms,
        ..OrderEvent::default()
    };
    let events = [
        order(
            1,
            vec![
                line(
                    "sku-smash-double",
                    "Double Smash Burger",
                    2,
                    vec![line("", "Fries", 1, vec![])],
                ),
                line("", "Cola", 2, vec![]),
            ],
            15,
        ),
        order(2, vec![line("", "Mystery Soup", 1, vec![])], 10),
        order(3, vec![line("", "Fries", 3, vec![])], 180),
        order(4, vec![line("", "Cola", 1, vec![])], 5),
        OrderEvent {
            event_id: "e5".into(),
            event_type: EventType::CancelOrder as i32,
            otter_event_type: "orders.cancel_order".into(),
            store_id: "kitchen-bk-01".into(),
            sequence: 5,
            order_id: "o4".into(),
            status: OrderStatus::Canceled as i32,
            ..OrderEvent::default()
        },
    ];
    let reference = Reference::parse(reference_text).expect("a valid reference");
    let store = Store::open(&data_dir.join(STORE_FILE)).expect("open the store");
    let mut kitchen =
        Kitchen::open(store, reference.into(), 20 * 60_000, now_ms).expect("open the kitchen");
    kitchen
        .apply_all(&events, now_ms)
        .expect("the seed orders apply");
}
