//! Storage-writes benchmark: what the agent writes to its SD card per order and per scan. The
//! real agent binary runs under `strace` (fsyncs, and every write with its file, size and — for
//! the WAL — the page each frame carries); orders arrive through the real RabbitMQ, tablets
//! bump them over HTTP, the courier's pick-up arrives as Otter's status, scans come through
//! `POST /api/scans`, and the sync pushes the outbox to the real PostgreSQL and deletes it.
//!
//! Phases, each measured on its own: *orders* (each order created, bumped at its three
//! stations, closed by Otter's `PICKED_UP`: five acknowledged transactions), *scans* (a ticket
//! scan bumping an order at the fryer; the orders are made beforehand, outside the phase) and
//! *idle*. `BENCH_GAP_MS` (default 1100) passes between two transactions, so each is written
//! and checkpointed as in a kitchen, where they come seconds apart, not batched. A phase ends
//! when the outbox is synced and deleted, and then the benchmark checkpoints the WAL itself (a
//! `sqlite3` under `strace`, counted in the phase), so a phase pays for its copy-back whatever
//! the agent's checkpoint policy. Pages are attributed to tables and indexes with SQLite's
//! `dbstat`, read after every step.
//!
//! `cargo bench -p edge-agent --bench storage` (BENCH_ORDERS, BENCH_SCANS, default 16 each;
//! BENCH_IDLE_S, default 10). Needs `strace` and `sqlite3`. Under `cargo test` it runs a short
//! smoke pass, so the benchmark cannot rot. Uses its own database, role, queues and data
//! directory, and removes them.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use kitchen_proto::{OrderEvent, OrderStatus, reference::Reference};
use kitchen_testkit::{
    amqp::{self, BrokerObjects, amqp_url},
    bench::env_or,
    db::{TestDb, TestRole, admin_database_url},
    dir::TempDir,
    events::{line, new_order, sku_line, status_update},
    http::{SseReader, get_json},
    names::unique,
    proxy::socket_addr_of,
};
use lapin::{Connection, ConnectionProperties};

/// The three stations, and the store (head office checks that the kitchen serves it before it
/// answers the sync's reconcile: without it the sync's round failed once that came due).
const REFERENCE: &str = concat!(
    include_str!("../tests/fixtures/three_stations.toml"),
    "\n[[stores]]\nstore_id = \"bench-storage\"\nbrand = \"Bench\"\n"
);
const STORE: &str = "bench-storage";
const STATIONS: [&str; 3] = ["grill", "fry", "drinks"];

/// The stream benchmark's order: a burger meal (fries and a cola as modifiers) and fries.
fn order_event(n: usize) -> OrderEvent {
    let now_ms = chrono::Utc::now().timestamp_millis();
    new_order(STORE, &format!("st-{n}"))
        .event_id(format!("st-ev-{n}"))
        .at(now_ms)
        .sequence(n as u64 + 1)
        .friendly_id(format!("{:04}", n % 10_000))
        .customer_name("Bench Customer")
        .pickup_at(now_ms + 15 * 60_000)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            1,
            vec![
                line("American Cheese", 1, vec![]),
                line(
                    "Make it a Meal",
                    1,
                    vec![
                        line("Fries", 1, vec![line("Large", 1, vec![])]),
                        line("Cola", 1, vec![]),
                    ],
                ),
            ],
        ))
        .item(line("Fries", 1, vec![]))
        .build()
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `write_bytes` of a process: what it caused to be sent to storage (whole 4 KiB pages).
fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One traced syscall: when, on which file, and (writes) the bytes and the WAL frame's page.
#[derive(Debug, Clone)]
struct Call {
    at: f64,
    fsync: bool,
    file: String,
    bytes: u64,
    /// A WAL frame header's page number, or the database page a checkpoint wrote.
    page: Option<u32>,
    /// Where a write landed in its file.
    offset: Option<u64>,
}

/// A path as `strace -xx` prints it (`\x2f\x74...`).
fn unhex(path: &str) -> String {
    let bytes: Vec<u8> = path
        .split("\\x")
        .filter_map(|h| u8::from_str_radix(h.get(..2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Parses `strace -f -ttt -y -xx -s 4` output (`pid time call(fd</path>, "\x..", n, off) = r`).
fn parse_trace(text: &str, page_size: u64) -> Vec<Call> {
    let mut calls = Vec::new();
    for l in text.lines() {
        if l.contains("unfinished") || l.contains("resumed") && !l.contains(" = ") {
            continue;
        }
        let mut words = l.split_whitespace();
        let (Some(_pid), Some(at)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(at) = at.parse::<f64>() else { continue };
        let fsync = l.contains("fsync(") || l.contains("fdatasync(");
        let write = l.contains("pwrite64(") || l.contains("write(");
        if !fsync && !write {
            continue;
        }
        let file = l
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map_or(String::new(), |(path, _)| unhex(path));
        let result: i64 = l
            .rsplit_once(" = ")
            .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(-1);
        if result < 0 {
            continue;
        }
        let bytes = if write { result as u64 } else { 0 };
        let hex = |s: &str| -> Option<u32> {
            let quoted = s.split_once('"')?.1.split_once('"')?.0;
            let digits: String = quoted.split("\\x").collect();
            u32::from_str_radix(digits.get(..8)?, 16).ok()
        };
        // pwrite64(fd, buf, n, offset)
        let offset = (write && l.contains("pwrite64(")).then(|| {
            l.rsplit_once(')')
                .and_then(|(args, _)| args.rsplit(", ").next()?.trim().parse::<u64>().ok())
        });
        let offset = offset.flatten();
        let page = if file.ends_with("-wal") && bytes == 24 {
            hex(l)
        } else if file.ends_with(".db") && write {
            // The database page is offset / page size + 1.
            offset.map(|offset| (offset / page_size + 1) as u32)
        } else {
            None
        };
        calls.push(Call {
            at,
            fsync,
            file,
            bytes,
            page,
            offset,
        });
    }
    calls
}

/// Which table or index each page belongs to, as `dbstat` saw it at a moment.
struct PageMaps {
    path: PathBuf,
    maps: Vec<(f64, HashMap<u32, String>)>,
}

impl PageMaps {
    fn snapshot(&mut self) -> anyhow::Result<()> {
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut statement = connection.prepare("SELECT pageno, name FROM dbstat")?;
        let map = statement
            .query_map([], |row| {
                Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<HashMap<_, _>, _>>()?;
        self.maps.push((epoch_s(), map));
        Ok(())
    }

    /// The page's owner in the first snapshot taken after `at`.
    fn owner(&self, page: u32, at: f64) -> &str {
        self.maps
            .iter()
            .find(|(taken, _)| *taken >= at)
            .or(self.maps.last())
            .and_then(|(_, map)| map.get(&page))
            .map_or("(free list)", String::as_str)
    }
}

/// What one phase wrote, from the trace and `/proc/<pid>/io`.
#[derive(Default)]
struct Phase {
    write_bytes: u64,
    fsyncs_wal: u64,
    fsyncs_db: u64,
    fsyncs_other: u64,
    wal_frames: u64,
    wal_bytes: u64,
    checkpoint_pages: u64,
    checkpoint_bytes: u64,
    other_bytes: u64,
    /// WAL frames per table or index.
    frames_by: BTreeMap<String, u64>,
    /// Checkpointed pages per table or index.
    copied_by: BTreeMap<String, u64>,
    /// WAL commits (runs of WAL writes ended by a WAL fsync).
    commits: u64,
    /// 4 KiB pages of the WAL file those commits wrote into, counted once per commit: what
    /// `write_bytes` charges, since each commit's fsync cleans the pages the next dirties.
    wal_pages_4k: u64,
    /// The commits, each as its frames' owners (for `BENCH_COMMITS`).
    commit_frames: Vec<Vec<String>>,
}

impl Phase {
    fn add(&mut self, calls: &[Call], maps: &PageMaps, page_size: u64) {
        let mut pages_4k = std::collections::BTreeSet::new();
        let mut frames = Vec::new();
        for call in calls {
            let wal = call.file.ends_with("-wal");
            let db = call.file.ends_with(".db");
            if wal
                && !call.fsync
                && let Some(offset) = call.offset
                && call.bytes > 0
            {
                pages_4k.extend(offset / 4096..=(offset + call.bytes - 1) / 4096);
            }
            if call.fsync {
                if wal && !pages_4k.is_empty() {
                    self.commits += 1;
                    self.wal_pages_4k += pages_4k.len() as u64;
                    pages_4k.clear();
                    self.commit_frames.push(std::mem::take(&mut frames));
                }
                match (wal, db) {
                    (true, _) => self.fsyncs_wal += 1,
                    (_, true) => self.fsyncs_db += 1,
                    _ => self.fsyncs_other += 1,
                }
                continue;
            }
            if wal {
                self.wal_bytes += call.bytes;
                if let Some(page) = call.page {
                    self.wal_frames += 1;
                    let owner = maps.owner(page, call.at).to_owned();
                    frames.push(owner.clone());
                    *self.frames_by.entry(owner).or_default() += 1;
                }
            } else if db {
                self.checkpoint_bytes += call.bytes;
                if call.bytes == page_size
                    && let Some(page) = call.page
                {
                    self.checkpoint_pages += 1;
                    *self
                        .copied_by
                        .entry(maps.owner(page, call.at).to_owned())
                        .or_default() += 1;
                }
            } else {
                self.other_bytes += call.bytes;
            }
        }
    }

    fn print(&self, name: &str, per: u64, page_size: u64) {
        let per = per.max(1) as f64;
        let kib = |b: u64| b as f64 / 1024.0 / per;
        println!(
            "{name}: {:.1} KiB written per {} (write_bytes), fsyncs {:.2} (WAL {:.2}, database {:.2}, other {:.2})",
            kib(self.write_bytes),
            if name == "idle" {
                "second"
            } else {
                name.trim_end_matches('s')
            },
            (self.fsyncs_wal + self.fsyncs_db + self.fsyncs_other) as f64 / per,
            self.fsyncs_wal as f64 / per,
            self.fsyncs_db as f64 / per,
            self.fsyncs_other as f64 / per,
        );
        println!(
            "  WAL: {:.1} frames × {page_size} B (+24 B header) = {:.1} KiB; checkpoints: {:.1} pages = {:.1} KiB copied back; other files {:.1} KiB",
            self.wal_frames as f64 / per,
            kib(self.wal_bytes),
            self.checkpoint_pages as f64 / per,
            kib(self.checkpoint_bytes),
            kib(self.other_bytes),
        );
        let mut owners: Vec<_> = self.frames_by.iter().collect();
        owners.sort_by(|a, b| b.1.cmp(a.1));
        let frames: Vec<String> = owners
            .iter()
            .map(|(owner, n)| {
                format!(
                    "{owner} {:.2} (copied back {:.2})",
                    **n as f64 / per,
                    *self.copied_by.get(*owner).unwrap_or(&0) as f64 / per
                )
            })
            .collect();
        println!("  WAL frames by table/index: {}", frames.join(", "));
        println!(
            "  commits: {:.2}, {:.1} frames each; 4 KiB WAL pages dirtied {:.2} = {:.1} KiB",
            self.commits as f64 / per,
            self.wal_frames as f64 / self.commits.max(1) as f64,
            self.wal_pages_4k as f64 / per,
            self.wal_pages_4k as f64 * 4.0 / per,
        );
        let shown = env_or("BENCH_COMMITS", 0);
        for (n, owners) in self.commit_frames.iter().take(shown).enumerate() {
            println!("  commit {n}: {}", owners.join(" "));
        }
    }
}

struct Rig {
    base: String,
    pid: u32,
    trace: PathBuf,
    store: PathBuf,
    page_size: u64,
    maps: PageMaps,
    gap: Duration,
    stream: SseReader,
}

impl Rig {
    /// Waits for `kind` about `order_id` on the tablets' stream.
    async fn seen(&mut self, kind: &str, order_id: &str) -> anyhow::Result<()> {
        loop {
            let (_, event, data) = self
                .stream
                .next_within(Duration::from_secs(20))
                .await
                .with_context(|| format!("no {kind} for {order_id}"))?;
            if event == kind && data["order_id"] == order_id {
                return Ok(());
            }
        }
    }

    /// After a step: the pages' owners now, then the gap.
    async fn step_done(&mut self) -> anyhow::Result<()> {
        self.maps.snapshot()?;
        tokio::time::sleep(self.gap).await;
        Ok(())
    }

    /// Ends a phase: outbox synced and deleted, the WAL checkpointed (by a traced `sqlite3`).
    /// Returns the calls of the bench's own checkpoint.
    async fn settle(&mut self) -> anyhow::Result<Vec<Call>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get_json(&format!("{}/readyz", self.base)).await["sync"]["backlog"] != 0 {
            anyhow::ensure!(Instant::now() < deadline, "outbox not synced in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The delete's transaction, and the agent's own checkpoint if it has one due.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        self.maps.snapshot()?;
        let trace = self.trace.with_extension("checkpoint");
        let status = Command::new("strace")
            .args(["-f", "-qq", "-ttt", "-y", "-xx", "-s", "4", "-o"])
            .arg(&trace)
            .args(["-e", "trace=fsync,fdatasync,write,pwrite64"])
            .arg("sqlite3")
            .arg(&self.store)
            .arg("PRAGMA wal_checkpoint(PASSIVE);")
            .stdout(Stdio::null())
            .status()
            .context("strace sqlite3")?;
        anyhow::ensure!(status.success(), "checkpoint failed");
        let text = std::fs::read_to_string(&trace)?;
        Ok(parse_trace(&text, self.page_size)
            .into_iter()
            .filter(|c| c.file.starts_with(self.store.to_str().unwrap_or_default()))
            .collect())
    }

    /// Starts measuring a phase: when, and the agent's `write_bytes` so far.
    fn begin(&self) -> (f64, u64) {
        (epoch_s(), write_bytes(self.pid))
    }

    /// Ends a phase begun at `begun`: the agent's calls and `write_bytes` since, up to the end
    /// of `settle`, plus the bench's own checkpoint.
    async fn end(&mut self, begun: (f64, u64)) -> anyhow::Result<Phase> {
        let (started, bytes_before) = begun;
        let own = self.settle().await?;
        let ended = epoch_s();
        let bytes = write_bytes(self.pid) - bytes_before;
        let text = std::fs::read_to_string(&self.trace)?;
        let calls: Vec<Call> = parse_trace(&text, self.page_size)
            .into_iter()
            .filter(|c| c.at >= started && c.at <= ended)
            .collect();
        let mut phase = Phase {
            write_bytes: bytes
                + own
                    .iter()
                    .filter(|c| !c.fsync)
                    .map(|c| c.bytes)
                    .sum::<u64>(),
            ..Phase::default()
        };
        phase.add(&calls, &self.maps, self.page_size);
        phase.add(&own, &self.maps, self.page_size);
        Ok(phase)
    }
}

/// The agent's pid: the child of strace running `binary` (strace 6 first forks a short-lived
/// child of its own to test ptrace: taking the first child measured, and killed, that one).
fn child_of(pid: u32, binary: &str) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let binary = std::fs::canonicalize(binary)?;
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().find(|child| {
            std::fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|exe| exe == binary)
        }) {
            return Ok(child.parse()?);
        }
        anyhow::ensure!(Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let orders = env_or("BENCH_ORDERS", if bench { 16 } else { 2 });
    let scans = env_or("BENCH_SCANS", if bench { 16 } else { 2 });
    let idle_s = env_or("BENCH_IDLE_S", if bench { 10 } else { 1 });
    let gap = Duration::from_millis(env_or("BENCH_GAP_MS", if bench { 1100 } else { 0 }) as u64);
    if Command::new("strace").arg("-V").output().is_err()
        || Command::new("sqlite3").arg("-version").output().is_err()
    {
        println!(
            "storage benchmark skipped: needs strace and sqlite3 (apt-get install strace sqlite3)"
        );
        return Ok(());
    }

    // The cloud: a database migrated by the relay, with the kitchen and its box's role.
    let kitchen_id = unique("bench-storage");
    let role = TestRole::named("box");
    let db = TestDb::migrated(&cloud_relay::db::MIGRATOR).await;
    cloud_relay::kitchens::add_kitchen(&db.pool, &kitchen_id, &role.name, None)
        .await
        .expect("kitchen provisioned");
    let reference = Reference::parse(REFERENCE).expect("valid reference");
    cloud_relay::kitchens::import_reference(&db.pool, &kitchen_id, &reference)
        .await
        .expect("imported");
    let database_url = format!(
        "postgres://{}@{}/{}",
        role.name,
        socket_addr_of(&admin_database_url()),
        db.name
    );

    // On disk (not tmpfs): `write_bytes` counts what reaches a block device.
    let data_dir = TempDir::new("bench-storage");
    std::fs::write(data_dir.path().join("reference.toml"), REFERENCE)?;
    edge_agent::pairing::pair_with_token(
        data_dir.path(),
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )?;
    let exchange = format!("{kitchen_id}.structured_order_data");
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url(),
        &exchange,
        &kitchen_id,
        &[STORE],
    )
    .await
    .expect("kitchen queue declared");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let trace = data_dir.path().join("agent.trace");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-ttt", "-y", "-xx", "-s", "4", "-o"])
        .arg(&trace)
        .args(["-e", "trace=fsync,fdatasync,write,pwrite64"])
        .arg(env!("CARGO_BIN_EXE_edge-agent"))
        .env("AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENT_DATA_DIR", data_dir.path())
        .env("AGENT_WRITE_RATE", "1000000")
        .env("AMQP_URL", amqp_url())
        .env("AGENT_DATABASE_URL", &database_url)
        .env("KITCHEN_ID", &kitchen_id)
        .env("STORE_IDS", STORE)
        .env("REFERENCE_FILE", data_dir.path().join("reference.toml"))
        .env("AGENT_ORDER_EXCHANGE", &exchange)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("strace starts")?;
    let pid = child_of(strace.id(), env!("CARGO_BIN_EXE_edge-agent"))?;
    let base = format!("http://127.0.0.1:{port}");

    let result = async {
        let started = Instant::now();
        while kitchen_testkit::http::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(20), "agent not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let store = data_dir.path().join(edge_agent::STORE_FILE);
        let page_size: u64 = rusqlite::Connection::open(&store)?
            .query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let http = kitchen_testkit::http::client();
        let mut rig = Rig {
            base: base.clone(),
            pid,
            trace: trace.clone(),
            store: store.clone(),
            page_size,
            maps: PageMaps {
                path: store.clone(),
                maps: Vec::new(),
            },
            gap,
            stream: SseReader::open(&format!("{base}/orders/events"), None).await,
        };
        rig.settle().await?;

        let begun = rig.begin();
        for n in 0..orders {
                    let id = format!("st-{n}");
                    amqp::publish(&channel, &exchange, &order_event(n)).await?;
                    rig.seen("order.created", &id).await?;
                    rig.step_done().await?;
                    for station in STATIONS {
                        let response = http
                            .post(format!("{}/api/orders/{id}/bump?station={station}", rig.base))
                            .send()
                            .await?;
                        anyhow::ensure!(response.status() == 200, "bump: {}", response.status());
                        rig.step_done().await?;
                    }
                    let picked_up =
                        status_update(STORE, &id, "orders.status_update", OrderStatus::PickedUp)
                            .event_id(format!("st-ev-{n}-picked-up"))
                            .build();
                    amqp::publish(&channel, &exchange, &picked_up).await?;
                    rig.seen("order.status", &id).await?;
                    rig.step_done().await?;
        }
        let order_phase = rig.end(begun).await?;

        // The orders the scans bump, outside the measurement.
        for n in orders..orders + scans {
            amqp::publish(&channel, &exchange, &order_event(n)).await?;
            rig.seen("order.created", &format!("st-{n}")).await?;
        }
        rig.settle().await?;
        let begun = rig.begin();
        for n in orders..orders + scans {
                    let response = http
                        .post(format!("{}/api/scans", rig.base))
                        .json(&serde_json::json!({
                            "device": "bench-fry", "station": "fry", "code": format!("ORDER:st-{n}")
                        }))
                        .send()
                        .await?;
                    anyhow::ensure!(response.status() == 200, "scan: {}", response.status());
                    rig.step_done().await?;
        }
        let scan_phase = rig.end(begun).await?;

        let begun = rig.begin();
        tokio::time::sleep(Duration::from_secs(idle_s as u64)).await;
        let idle_phase = rig.end(begun).await?;

        let (open, size): (i64, i64) = rusqlite::Connection::open(&store)?.query_row(
            "SELECT (SELECT count(*) FROM orders WHERE state = 'open'), page_count * page_size
             FROM pragma_page_count, pragma_page_size",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        anyhow::ensure!(open == scans as i64, "{open} orders open, expected {scans}");
        println!(
            "edge-agent storage benchmark: {orders} orders (created, bumped at 3 stations, picked up), \
             {scans} ticket scans, {idle_s} s idle; {} ms between transactions; page size {page_size} B; \
             database {:.0} KiB after the run",
            gap.as_millis(),
            size as f64 / 1024.0
        );
        let entries: Vec<String> = rusqlite::Connection::open(&store)?
            .prepare(
                "SELECT kind, count(*), avg(length(data) + length(coalesce(stations, ''))
                                          + length(coalesce(record_id, '')))
                 FROM event_log GROUP BY kind ORDER BY kind",
            )?
            .query_map([], |row| {
                Ok(format!(
                    "{} {} × {:.0} B",
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, f64>(2)?
                ))
            })?
            .collect::<Result<_, _>>()?;
        println!("event log entries: {}", entries.join(", "));
        order_phase.print("orders", orders as u64, page_size);
        scan_phase.print("scans", scans as u64, page_size);
        idle_phase.print("idle", idle_s as u64, page_size);
        let _ = connection.close(200, "bench done".into()).await;
        Ok::<_, anyhow::Error>(())
    }
    .await;

    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = strace.wait();
    drop(broker);
    drop(data_dir);
    result
}
