//! Pairing on the box's console (`edge-agent pair | devices | revoke`): for kiosk set-ups,
//! automation and a kitchen whose every manager device is lost. Works while the agent runs (a
//! second connection to the store; SQLite serializes the writes). The agent sees a new device
//! at its next request and a revocation at once on requests, within a keep-alive (15 s) on
//! open streams.

use std::path::Path;

use anyhow::Context;

use crate::{
    STORE_FILE,
    device::{self, Device, Role},
    store::{NewDevice, Store},
};

/// Pairs a device directly; returns it and its token (shown once, never stored).
pub fn pair(
    data_dir: &Path,
    role: &str,
    name: &str,
    station: Option<&str>,
) -> anyhow::Result<(Device, String)> {
    let token = device::new_token();
    let device = pair_with_token(data_dir, role, name, station, &token)?;
    Ok((device, token))
}

/// Pairs a device with a token made elsewhere (a kiosk image built with its token, a test
/// harness); at least 32 bytes, and as random as [`pair`]'s are.
pub fn pair_with_token(
    data_dir: &Path,
    role: &str,
    name: &str,
    station: Option<&str>,
    token: &str,
) -> anyhow::Result<Device> {
    anyhow::ensure!(token.len() >= 32, "a device token has at least 32 bytes");
    let role = Role::parse(role)?;
    let name = device::check_new(name, role, station)?;
    let mut store = open(data_dir)?;
    let new = NewDevice {
        id: device::new_id(),
        token_hash: device::token_hash(token),
        name,
        role,
        station: station.map(str::to_owned),
        paired_by: "console".into(),
    };
    let device = store
        .pair_device(&new, kitchen_daemon::clock::now_ms())
        .context("cannot write the store")??;
    Ok(device)
}

/// Every device ever paired.
pub fn devices(data_dir: &Path) -> anyhow::Result<Vec<Device>> {
    Ok(open(data_dir)?.devices()?)
}

/// Revokes a device by id; an error when there is none.
pub fn revoke(data_dir: &Path, id: &str) -> anyhow::Result<Device> {
    open(data_dir)?
        .revoke_device(id, kitchen_daemon::clock::now_ms())?
        .with_context(|| format!("no device {id:?} (edge-agent devices lists them)"))
}

/// Adds a staff member who may 86 with a PIN; returns the PIN (shown once, stored hashed). Once
/// any staff member exists, 86ing needs a PIN.
pub fn add_staff(data_dir: &Path, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= device::MAX_NAME_BYTES
            && !name.chars().any(char::is_control),
        "a staff name is 1 to {} bytes of printable text",
        device::MAX_NAME_BYTES
    );
    let mut store = open(data_dir)?;
    anyhow::ensure!(
        !store.staff_names()?.iter().any(|known| known == name),
        "{name:?} already has a PIN (edge-agent staff remove --name first)"
    );
    // A PIN already someone else's is drawn again.
    for _ in 0..20 {
        let pin = device::new_pin();
        let hash = device::token_hash(&pin);
        if store.add_staff(name, &hash, kitchen_daemon::clock::now_ms())? {
            return Ok(pin);
        }
    }
    anyhow::bail!("no free PIN found; remove staff who have left")
}

pub fn staff(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(open(data_dir)?.staff_names()?)
}

pub fn remove_staff(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        open(data_dir)?.remove_staff(name.trim())?,
        "no staff member {name:?} (edge-agent staff list lists them)"
    );
    Ok(())
}

fn open(data_dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(STORE_FILE);
    Store::open(&path).with_context(|| format!("cannot open the store {}", path.display()))
}

/// One line per device, for the console.
pub fn describe(device: &Device) -> String {
    let station = device
        .station
        .as_deref()
        .map(|s| format!(" at {s}"))
        .unwrap_or_default();
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let state = match device.revoked_at_ms {
        Some(at) => format!("revoked {}", time(at)),
        None => format!("paired {}", time(device.paired_at_ms)),
    };
    format!(
        "{}  {:<8} {}{station}  ({state}, by {})",
        device.id,
        device.role.as_str(),
        device.name,
        device.paired_by
    )
}
