//! The whole system as real processes: a PostgreSQL cluster and a RabbitMQ node of the run's
//! own, two relays on
//! it, two kitchens' agents (store `s2` served by both), every link to PostgreSQL and RabbitMQ
//! through a TCP proxy the harness cuts or impairs. Each agent has a serial scanner on a pty,
//! its data directory on a small filesystem of its own (`disk`), and its wall clock under
//! libfaketime so that the harness can jump it. Everything made here is removed when `System`
//! drops.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use kitchen_testkit::{
    dir::TempDir,
    pg_cluster::PgCluster,
    proxy::{Proxy, socket_addr_of, through},
    pty::{Pty, point},
    tls::TestCa,
};

use crate::{broker::OwnBroker, disk::Tmpfs, process::Supervised};

/// libfaketime (Debian's `faketime`, installed by scripts/chaos): preloaded into the agents.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The name of each agent's serial scanner (the `device` of its scans).
pub const SCANNER: &str = "chaos-grill";

pub const SECRET: &str = "chaos-webhook-secret";
/// The station every item counts at, and where the load bumps.
pub const STATION: &str = "grill";
pub const ITEM_NAME: &str = "Double Smash Burger";

const REFERENCE: &str = r#"
[[stations]]
id = "grill"
name = "Grill"
[[items]]
id = "double-smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 420
match = ["Double Smash Burger"]
"#;

/// Kitchen `k1` serves `s1` and `s2`, `k2` serves `s2` and `s3`.
pub const KITCHENS: [(&str, &[&str]); 2] = [("k1", &["s1", "s2"]), ("k2", &["s2", "s3"])];

pub struct Relay {
    pub url: String,
    pub admin_url: String,
    pub process: Option<Supervised>,
}

pub struct Agent {
    pub kitchen_id: String,
    pub base: String,
    pub data_dir: PathBuf,
    /// The kitchen's reference file's text (`data_dir/reference.toml`), as a new card is
    /// flashed with it.
    pub reference: String,
    pub process: Option<Supervised>,
    /// The grill's station scanner: the harness writes to the master what a scanner sends.
    pub scanner: Pty,
    /// libfaketime's offset for this agent (`+0`, `+7200`, `-3600`, in seconds), read by the
    /// agent at every clock read; the real clock's offset is `+0`.
    pub clock_file: PathBuf,
}

/// A new card for a kitchen: `data_dir` emptied (it is a mount point: its contents go, not it)
/// and given the reference file and the test device paired, as the image and `kitchen.toml`
/// provide them.
pub fn flash(data_dir: &Path, reference: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(data_dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    std::fs::write(data_dir.join("reference.toml"), reference)?;
    edge_agent::pairing::pair_with_token(
        data_dir,
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )?;
    Ok(())
}

/// What the harness runs. Fields drop in order: processes first, then the links, the cluster,
/// the broker objects and the directory.
pub struct System {
    pub relays: Vec<Relay>,
    pub agents: Vec<Agent>,
    /// One per process, relays then agents: the process's link to RabbitMQ.
    pub broker_links: Vec<Proxy>,
    /// One per process, relays then agents: the process's link to PostgreSQL.
    pub pg_links: Vec<Proxy>,
    pub pg: PgCluster,
    pub pg_url: String,
    pub broker: OwnBroker,
    /// The agents' data disks, in the agents' order; unmounted before the directory goes.
    pub disks: Vec<Tmpfs>,
    pub dir: TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .chain([("RUST_LOG".to_owned(), "warn".to_owned())])
        .collect()
}

impl System {
    pub async fn start(relay_bin: &Path, agent_bin: &Path) -> anyhow::Result<Self> {
        let run = format!("chaos-{}", std::process::id());
        let dir = TempDir::new("chaos");
        let ca = TestCa::new("chaos-ca");
        let pg = tokio::task::spawn_blocking(move || PgCluster::start(&ca.server_cert()))
            .await
            .context("cluster starts")?;
        let pg_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
        let node = run.clone();
        let broker = tokio::task::spawn_blocking(move || OwnBroker::start(&node))
            .await
            .context("rabbitmq starts")??;
        let amqp_url = broker.url();
        let order_exchange = format!("{run}.orders");
        let raw_exchange = format!("{run}.raw");

        let mut broker_links = Vec::new();
        let mut pg_links = Vec::new();
        for _ in 0..4 {
            broker_links.push(Proxy::start(socket_addr_of(&amqp_url)).await);
            pg_links.push(Proxy::start(socket_addr_of(&pg_url)).await);
        }

        let mut relays = Vec::new();
        for n in 0..2 {
            let (port, admin) = (free_port()?, free_port()?);
            let process = Supervised::start(
                &format!("relay{}", n + 1),
                relay_bin.to_owned(),
                env(&[
                    ("RELAY_LISTEN", format!("127.0.0.1:{port}")),
                    ("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{admin}")),
                    ("DATABASE_URL", through(&pg_url, pg_links[n].addr)),
                    ("RELAY_DATABASE_POOL_SIZE", "4".into()),
                    ("AMQP_URL", through(&amqp_url, broker_links[n].addr)),
                    ("RELAY_ORDER_EXCHANGE", order_exchange.clone()),
                    ("RELAY_RAW_EVENTS_EXCHANGE", raw_exchange.clone()),
                    ("OTTER_WEBHOOK_SECRET", SECRET.into()),
                    ("RELAY_AMQP_TIMEOUT_MS", "5000".into()),
                    ("RELAY_DATABASE_TIMEOUT_MS", "3000".into()),
                ]),
                dir.path().join(format!("relay{}.log", n + 1)),
            );
            relays.push(Relay {
                url: format!("http://127.0.0.1:{port}"),
                admin_url: format!("http://127.0.0.1:{admin}"),
                process: Some(process),
            });
        }
        for relay in &relays {
            wait_ready(&relay.admin_url, Duration::from_secs(60)).await?;
        }

        // Provisioning as `cloud-relay kitchen add` does in the database (docs/sync.md, "by
        // hand"), and the kitchens' queues with the relay's own declarations.
        let admin = sqlx::PgPool::connect(&pg_url).await?;
        let mut agents = Vec::new();
        let mut disks = Vec::new();
        anyhow::ensure!(
            Path::new(FAKETIME_LIB).exists(),
            "{FAKETIME_LIB} is missing: install Debian's faketime (scripts/chaos does)"
        );
        for (n, (name, stores)) in KITCHENS.iter().enumerate() {
            let kitchen_id = format!("{run}-{name}");
            let role = format!("chaos_{name}");
            sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1)")
                .bind(&kitchen_id)
                .execute(&admin)
                .await?;
            sqlx::query(&format!("CREATE ROLE {role} LOGIN IN ROLE kitchen_agent"))
                .execute(&admin)
                .await?;
            sqlx::query("INSERT INTO kitchen.agent_roles (role_name, kitchen_id) VALUES ($1, $2)")
                .bind(&role)
                .bind(&kitchen_id)
                .execute(&admin)
                .await?;
            cloud_relay::kitchens::broker::declare_kitchen_queue_at(
                &amqp_url,
                &order_exchange,
                &kitchen_id,
                stores,
            )
            .await
            .context("kitchen queue declared")?;
            let data_dir = dir.path().join(name);
            disks.push(Tmpfs::mount(&data_dir)?);
            let scanner = Pty::open();
            let scanner_link = dir.path().join(format!("scanner-{name}"));
            point(&scanner_link, &scanner.slave);
            let config = dir.path().join(format!("agent-{name}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[[scanners]]\nname = \"{SCANNER}\"\ndevice = \"{}\"\nrole = \"station\"\n\
                     station = \"{STATION}\"\n",
                    scanner_link.display()
                ),
            )?;
            let clock_file = dir.path().join(format!("clock-{name}"));
            std::fs::write(&clock_file, "+0\n")?;
            let store_lines: String = stores
                .iter()
                .map(|store| format!("[[stores]]\nstore_id = \"{store}\"\nbrand = \"Chaos\"\n"))
                .collect();
            let reference_text = format!("{REFERENCE}{store_lines}");
            flash(&data_dir, &reference_text)?;
            let reference = data_dir.join("reference.toml");
            // As production does (docs/sync.md): the kitchen's stores reach PostgreSQL with its
            // reference, which is what lets its box read back the events of those stores.
            let import = std::process::Command::new(relay_bin)
                .args(["reference", "import", "--kitchen", &kitchen_id])
                .arg(&reference)
                .env("DATABASE_URL", &pg_url)
                .output()?;
            anyhow::ensure!(
                import.status.success(),
                "reference import failed: {}",
                String::from_utf8_lossy(&import.stderr)
            );
            let port = free_port()?;
            let link = 2 + n;
            let box_url = format!("postgres://{role}@127.0.0.1:{}/postgres", pg.port);
            let process = Supervised::start(
                &format!("agent-{name}"),
                agent_bin.to_owned(),
                env(&[
                    ("AGENT_LISTEN", format!("127.0.0.1:{port}")),
                    ("AGENT_DATA_DIR", data_dir.display().to_string()),
                    ("AMQP_URL", through(&amqp_url, broker_links[link].addr)),
                    ("KITCHEN_ID", kitchen_id.clone()),
                    ("STORE_IDS", stores.join(",")),
                    ("REFERENCE_FILE", reference.display().to_string()),
                    ("AGENT_ORDER_EXCHANGE", order_exchange.clone()),
                    ("AGENT_DATABASE_URL", through(&box_url, pg_links[link].addr)),
                    ("AGENT_WRITE_RATE", "100000".into()),
                    ("AGENT_RECONCILE_SECS", "10".into()),
                    ("AGENT_AMQP_TIMEOUT_MS", "5000".into()),
                    ("AGENT_CONFIG", config.display().to_string()),
                    ("AGENT_SCANNER_RETRY_MS", "500".into()),
                    // The wall clock only, as a real clock step does (NTP, a dead RTC): the
                    // monotonic clock the agent's timers run on is the machine's.
                    ("LD_PRELOAD", FAKETIME_LIB.into()),
                    ("FAKETIME_TIMESTAMP_FILE", clock_file.display().to_string()),
                    ("FAKETIME_NO_CACHE", "1".into()),
                    ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
                ]),
                dir.path().join(format!("agent-{name}.log")),
            );
            agents.push(Agent {
                kitchen_id,
                base: format!("http://127.0.0.1:{port}"),
                data_dir,
                reference: reference_text,
                process: Some(process),
                scanner,
                clock_file,
            });
        }
        admin.close().await;
        for agent in &agents {
            wait_ready(&agent.base, Duration::from_secs(60)).await?;
        }
        Ok(Self {
            relays,
            agents,
            broker_links,
            pg_links,
            pg,
            pg_url,
            broker,
            disks,
            dir,
        })
    }

    /// The first process (`relay1`, `agent-k2`, ...) not answering `/readyz` with 200 (relays
    /// on their admin listener); `None` when all are ready.
    pub async fn not_ready(&self) -> Option<String> {
        let relays = self
            .relays
            .iter()
            .enumerate()
            .map(|(n, r)| (format!("relay{}", n + 1), &r.admin_url));
        let agents = self
            .agents
            .iter()
            .zip(KITCHENS)
            .map(|(a, (name, _))| (format!("agent-{name}"), &a.base));
        for (name, url) in relays.chain(agents) {
            if !is_ready(url).await {
                return Some(name);
            }
        }
        None
    }

    /// Stops every process gracefully (the data stays for the check).
    pub async fn stop_processes(&mut self) {
        let processes = self
            .relays
            .iter_mut()
            .map(|r| r.process.take())
            .chain(self.agents.iter_mut().map(|a| a.process.take()));
        for process in processes.flatten().collect::<Vec<_>>() {
            process.shutdown().await;
        }
    }
}

async fn is_ready(base: &str) -> bool {
    let ready = tokio::time::timeout(
        Duration::from_secs(2),
        kitchen_testkit::http::get(format!("{base}/readyz")),
    )
    .await;
    matches!(ready, Ok(Ok(response)) if response.status() == 200)
}

pub async fn wait_ready(base: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !is_ready(base).await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{base} not ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
