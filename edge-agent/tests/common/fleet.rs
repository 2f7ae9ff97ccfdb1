//! What the fleet channel's tests share: the agent binary started on a test broker (for the
//! signals only a process gets), and the machine's boot id the presence carries.

use std::process::{Child, Command, Stdio};

use kitchen_testkit::mqtt::Mosquitto;

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_owned()
}

/// The agent binary for kitchen `kitchen` with the fleet channel on `broker` (logging in with
/// `password`), no feed and no sync, data in `data_dir`; SIGKILL or SIGTERM it as the test needs.
pub fn spawn_binary(
    broker: &Mosquitto,
    kitchen: &str,
    password: &str,
    data_dir: &std::path::Path,
) -> Child {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENT_CONFIG", manifest.join("agent.toml"))
        .env("REFERENCE_FILE", manifest.join("reference.example.toml"))
        .env("AGENT_DATA_DIR", data_dir)
        .env(
            "AGENT_PROVISION_ERROR_FILE",
            data_dir.join("provision-error"),
        )
        .env("AGENT_LISTEN", "127.0.0.1:0")
        .env("KITCHEN_ID", kitchen)
        .env("MQTT_URL", broker.url())
        .env("MQTT_PASSWORD", password)
        .env("RUST_LOG", "warn")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the agent starts")
}
