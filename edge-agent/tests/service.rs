//! The real agent binary as systemd runs it: `check-config` (the unit's `ExecStartPre`) accepts
//! the packaged config and refuses a bad one with the reason, never printing the broker secret
//! it reads from `$CREDENTIALS_DIRECTORY`; under `$NOTIFY_SOCKET` the agent says `READY=1` once
//! it serves, pings `WATCHDOG=1` at half of `$WATCHDOG_USEC` and says `STOPPING=1` on SIGTERM.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const SECRET: &str = "pw-9f8e7d";

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agent-service-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manifest(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// The agent with the packaged config, a temp data dir and the example reference.
fn agent(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-agent"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENT_CONFIG", manifest("agent.toml"))
        .env("REFERENCE_FILE", manifest("reference.example.toml"))
        .env("AGENT_DATA_DIR", dir.join("data"))
        .env("AGENT_PROVISION_ERROR_FILE", dir.join("provision-error"))
        .env("AGENT_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_config(command: &mut Command) -> Output {
    command.arg("check-config").output().expect("runs")
}

#[test]
fn check_config_summarises_a_good_config_and_refuses_a_bad_one() {
    let dir = TempDir::new("check");
    let credentials = dir.0.join("credentials");
    std::fs::create_dir_all(&credentials).expect("dir");
    std::fs::write(
        credentials.join("amqp_url"),
        format!("amqps://bk-01:{SECRET}@broker.example.com:5671/%2f\n"),
    )
    .expect("credential");

    let output = check_config(
        agent(&dir.0)
            .env("KITCHEN_ID", "bk-01")
            .env("STORE_IDS", "kitchen-bk-01")
            .env("CREDENTIALS_DIRECTORY", &credentials),
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.starts_with("config ok: listen 127.0.0.1:0, data ")
            && stdout.contains(", kitchen bk-01 (1 stores), reference ")
            && stdout.contains(" stations, ")
            && stdout.trim_end().ends_with(", 0 scanners"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains(SECRET) && !text(&output.stderr).contains(SECRET));

    let output = check_config(agent(&dir.0).env("AGENT_PREFETCH", "lots"));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invalid value for environment variable AGENT_PREFETCH"),
        "{stderr}"
    );

    // A broken URL in the credential: refused, without echoing it.
    std::fs::write(credentials.join("amqp_url"), format!("{SECRET}@nowhere")).expect("write");
    let output = check_config(
        agent(&dir.0)
            .env("KITCHEN_ID", "bk-01")
            .env("STORE_IDS", "kitchen-bk-01")
            .env("CREDENTIALS_DIRECTORY", &credentials),
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("amqp_url is not an AMQP URL"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");

    // A refused reference file fails the check, unless the unit's --skip-reference is given.
    let broken = dir.0.join("broken-reference.toml");
    std::fs::write(&broken, "[[items]]\nid = 1\n").expect("write");
    let output = check_config(agent(&dir.0).env("REFERENCE_FILE", &broken));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("reference"),
        "{}",
        text(&output.stderr)
    );
    let output = agent(&dir.0)
        .env("REFERENCE_FILE", &broken)
        .args(["check-config", "--skip-reference"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("(not checked)"));
}

#[test]
fn check_config_refuses_plaintext_and_unverified_links_off_the_box() {
    let dir = TempDir::new("links");
    let provisioned = |command: &mut Command| -> Output {
        check_config(
            command
                .env("KITCHEN_ID", "bk-01")
                .env("STORE_IDS", "kitchen-bk-01"),
        )
    };
    let refused = |output: Output, expected: &str| {
        assert!(!output.status.success(), "{}", text(&output.stdout));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("invalid config: {expected}")),
            "{stderr}"
        );
        assert!(!stderr.contains(SECRET), "{stderr}");
    };
    refused(
        provisioned(agent(&dir.0).env("AMQP_URL", format!("amqp://bk:{SECRET}@10.1.2.3:5672/%2f"))),
        "amqp_url: plaintext amqp:// to 10.1.2.3 is refused: a link off the box must use \
         amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
         127.0.0.0/8, ::1 or localhost only",
    );
    refused(
        provisioned(agent(&dir.0).env(
            "AGENT_DATABASE_URL",
            format!("postgres://bk:{SECRET}@10.1.2.3:5432/kitchen?sslmode=prefer"),
        )),
        "database_url: sslmode=prefer to 10.1.2.3 is refused: a link off the box needs \
         sslmode=verify-full (TLS with the server's certificate and host name verified); \
         other modes are allowed to 127.0.0.0/8, ::1 or localhost only",
    );
    // A CA bundle that is not one: both verified links would be unverifiable.
    let bad_ca = dir.0.join("ca.pem");
    std::fs::write(&bad_ca, "not a certificate\n").expect("write");
    refused(
        provisioned(agent(&dir.0).env("AGENT_CA_FILE", &bad_ca)),
        &format!(
            "ca_file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it: not \
             connecting until it is fixed",
            bad_ca.display()
        ),
    );
    // Plaintext to loopback is fine; verified TLS off the box too.
    for (amqp, database) in [
        (
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "postgres://bk@localhost:5432/kitchen?sslmode=disable",
        ),
        (
            "amqps://bk:pw@broker.example.com:5671/%2f",
            "postgres://bk:pw@db.example.com/kitchen?sslmode=verify-full",
        ),
    ] {
        let output = provisioned(
            agent(&dir.0)
                .env("AMQP_URL", amqp)
                .env("AGENT_DATABASE_URL", database),
        );
        assert!(output.status.success(), "{amqp}: {}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains(", no ca bundle, "),
            "{}",
            text(&output.stdout)
        );
    }
    // The unit's ExecStartPre: --skip-links passes and names what the agent will run without.
    let output = agent(&dir.0)
        .env("KITCHEN_ID", "bk-01")
        .env("STORE_IDS", "kitchen-bk-01")
        .env("AMQP_URL", format!("amqp://bk:{SECRET}@10.1.2.3:5672/%2f"))
        .args(["check-config", "--skip-links"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(
            ", links refused (the agent runs without them): amqp_url: plaintext amqp:// to \
             10.1.2.3 is refused"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET));
}

#[test]
fn tells_systemd_ready_pings_the_watchdog_and_says_stopping() {
    let dir = TempDir::new("notify");
    let socket_path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let mut child = agent(&dir.0)
        .env("NOTIFY_SOCKET", &socket_path)
        // A 2 s watchdog: pings every second at the latest.
        .env("WATCHDOG_USEC", "2000000")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let receive = |what: &str| -> String {
        let mut buf = [0u8; 512];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no message ({what}): {e}"));
        text(&buf[..n])
    };
    assert_eq!(receive("ready"), "READY=1");
    assert_eq!(
        receive("status"),
        "STATUS=serving the LAN only: not provisioned"
    );
    let mut pings = Vec::new();
    while pings.len() < 3 {
        let message = receive("watchdog");
        assert_eq!(message, "WATCHDOG=1");
        pings.push(Instant::now());
    }
    // Three pings within about two intervals: at least one a second.
    assert!(
        pings[2] - pings[0] < Duration::from_millis(2500),
        "pings too far apart: {:?}",
        pings.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    // Pings may still be on their way; STOPPING=1 must come, then the process exits 0.
    loop {
        let message = receive("stopping");
        if message == "STOPPING=1" {
            break;
        }
        assert_eq!(message, "WATCHDOG=1");
    }
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn pairs_lists_and_revokes_devices_on_the_console() {
    let dir = TempDir::new("pair");
    let paired = agent(&dir.0)
        .args([
            "pair",
            "--role",
            "cook",
            "--name",
            "Grill tablet",
            "--station",
            "grill",
        ])
        .output()
        .expect("runs");
    assert!(paired.status.success(), "{}", text(&paired.stderr));
    let out = text(&paired.stdout);
    let last = out.lines().last().expect("a line");
    let token = last.split_whitespace().last().expect("a word");
    assert_eq!(last, format!("token: {token}"));
    assert!(token.starts_with("kd1_") && token.len() == 68, "{token}");
    let first = out.lines().next().expect("the device");
    let id = first.split_whitespace().next().expect("id");
    assert!(
        first.contains("cook     Grill tablet at grill  (paired "),
        "{first}"
    );
    assert!(first.ends_with(", by console)"), "{first}");

    let refused = agent(&dir.0)
        .args(["pair", "--role", "cook", "--name", "Fry tablet"])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("a cook device needs its station"),
        "{}",
        text(&refused.stderr)
    );

    let revoked = agent(&dir.0).args(["revoke", id]).output().expect("runs");
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(text(&revoked.stdout).contains("Grill tablet at grill  (revoked "));
    let listed = agent(&dir.0).arg("devices").output().expect("runs");
    assert_eq!(text(&listed.stdout).lines().count(), 1);
    assert!(text(&listed.stdout).starts_with(&format!("{id}  cook ")));
    let unknown = agent(&dir.0)
        .args(["revoke", "dev-0"])
        .output()
        .expect("runs");
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("no device \"dev-0\""));
}

/// A flood of LAN writes cannot starve the watchdog: its tick goes through the same store
/// writer, but at most 32 writes wait there (the rest are answered 503), so the pings keep
/// coming at their interval while 1,000 clients write as fast as they can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_writes_does_not_starve_the_watchdog() {
    let dir = TempDir::new("flood");
    let paired = agent(&dir.0)
        .args(["pair", "--role", "manager", "--name", "flooder"])
        .output()
        .expect("runs");
    assert!(paired.status.success(), "{}", text(&paired.stderr));
    let token = text(&paired.stdout)
        .split_whitespace()
        .last()
        .expect("token")
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let socket_path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut child = agent(&dir.0)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENT_WRITE_RATE", "1000000")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let pings = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 512];
        let mut pings = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(9) {
            let Ok(n) = socket.recv(&mut buf) else { break };
            if &buf[..n] == b"WATCHDOG=1" {
                pings.push(Instant::now());
            }
        }
        pings
    });
    // Serving: then 1,000 clients flood scans for 6 s.
    let base = format!("http://127.0.0.1:{port}");
    let client = kitchen_testkit::http::bare();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..1000 {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            let (mut answered, mut shed) = (0u32, 0u32);
            let mut n = 0;
            while flood_started.elapsed() < Duration::from_secs(6) {
                n += 1;
                let response = client
                    .post(format!("{base}/api/scans"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"code": format!("ORDER:w{w}-{n}"), "role": "prep"}))
                    .send()
                    .await;
                match response.map(|r| r.status().as_u16()) {
                    Ok(422) => answered += 1,
                    Ok(503) => shed += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            (answered, shed)
        }));
    }
    let (mut answered, mut shed) = (0, 0);
    for writer in writers {
        let (a, s) = writer.await.expect("writer");
        answered += a;
        shed += s;
    }
    let pings = pings.await.expect("pings");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let during: Vec<Duration> = pings
        .windows(2)
        .filter(|w| w[0] >= flood_started && w[1] <= flood_started + Duration::from_secs(6))
        .map(|w| w[1] - w[0])
        .collect();
    assert!(answered > 100, "{answered} writes answered, {shed} shed");
    assert!(during.len() >= 4, "pings during the flood: {during:?}");
    let longest = during.iter().max().copied().unwrap_or_default();
    assert!(
        longest < Duration::from_millis(1500),
        "the watchdog waited {longest:?} between pings during the flood ({answered} writes answered, {shed} shed)"
    );
    println!(
        "flood: {answered} writes answered, {shed} shed (503); longest gap between pings {longest:?}"
    );
}
