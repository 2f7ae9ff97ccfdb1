//! Paired devices and pairing codes (migration 0007). Tokens and codes are stored hashed
//! (`device::token_hash`); the caller hashes.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};
use crate::device::{Device, DeviceError, Role};

/// A device about to be paired (checked with `device::check_new`).
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub id: String,
    pub token_hash: String,
    pub name: String,
    pub role: Role,
    pub station: Option<String>,
    pub paired_by: String,
}

/// A pairing code a manager made: the device that uses it gets this role and station.
#[derive(Debug, Clone)]
pub struct PairingCode {
    pub code_hash: String,
    pub role: Role,
    pub station: Option<String>,
    pub created_by: String,
    pub expires_at_ms: i64,
}

const COLUMNS: &str = "id, name, role, station, paired_at, paired_by, revoked_at";

fn device(row: &Row<'_>) -> rusqlite::Result<Device> {
    let role: String = row.get(2)?;
    Ok(Device {
        id: row.get(0)?,
        name: row.get(1)?,
        // Written only from `Role::as_str`; an unknown one (a newer agent's) reads as display.
        role: Role::parse(&role).unwrap_or(Role::Display),
        station: row.get(3)?,
        paired_at_ms: row.get(4)?,
        paired_by: row.get(5)?,
        revoked_at_ms: row.get(6)?,
    })
}

impl Store {
    /// The device holding a token with this hash (revoked ones too: the caller says so).
    pub fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>, StoreError> {
        Ok(self
            .connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM devices WHERE token_hash = ?1"),
                [token_hash],
                device,
            )
            .optional()?)
    }

    /// Every device ever paired, newest first.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM devices ORDER BY paired_at DESC, id"
        ))?;
        let devices = statement
            .query_map([], device)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(devices)
    }

    /// Whether the provisioning code has paired a device already (it works once).
    pub fn bootstrap_used(&self) -> Result<bool, StoreError> {
        Ok(self.connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE paired_by = 'bootstrap')",
            [],
            |row| row.get(0),
        )?)
    }

    /// Pairs a device; `Ok(Err(NameTaken))` when a device in use has its name.
    pub fn pair_device(
        &mut self,
        new: &NewDevice,
        now_ms: i64,
    ) -> Result<Result<Device, DeviceError>, StoreError> {
        let tx = self.transaction()?;
        let paired = insert(&tx, new, now_ms)?;
        tx.commit()?;
        Ok(paired)
    }

    /// Pairs a device with a manager's code in one transaction: the code is used up only when
    /// the device is paired. `Ok(None)`: no such code, or expired.
    pub fn pair_with_code(
        &mut self,
        code_hash: &str,
        mut new: NewDevice,
        now_ms: i64,
    ) -> Result<Option<Result<Device, DeviceError>>, StoreError> {
        let tx = self.transaction()?;
        tx.execute("DELETE FROM pairing_codes WHERE expires_at <= ?1", [now_ms])?;
        let code = tx
            .query_row(
                "SELECT role, station, created_by FROM pairing_codes WHERE code_hash = ?1",
                [code_hash],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((role, station, created_by)) = code else {
            tx.commit()?;
            return Ok(None);
        };
        new.role = Role::parse(&role).unwrap_or(Role::Display);
        new.station = station;
        new.paired_by = format!("code:{created_by}");
        let paired = insert(&tx, &new, now_ms)?;
        if paired.is_ok() {
            tx.execute(
                "DELETE FROM pairing_codes WHERE code_hash = ?1",
                [code_hash],
            )?;
        }
        tx.commit()?;
        Ok(Some(paired))
    }

    /// Stores a pairing code.
    pub fn add_pairing_code(&mut self, code: &PairingCode) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT INTO pairing_codes (code_hash, role, station, created_by, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                code.code_hash,
                code.role.as_str(),
                code.station,
                code.created_by,
                code.expires_at_ms
            ],
        )?;
        Ok(())
    }

    /// Revokes a device (its token stops working at once); `None`: no such device. Revoking
    /// again keeps the first time.
    pub fn revoke_device(&mut self, id: &str, now_ms: i64) -> Result<Option<Device>, StoreError> {
        self.connection.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now_ms],
        )?;
        Ok(self
            .connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM devices WHERE id = ?1"),
                [id],
                device,
            )
            .optional()?)
    }
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    new: &NewDevice,
    now_ms: i64,
) -> Result<Result<Device, DeviceError>, StoreError> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE name = ?1 AND revoked_at IS NULL)",
        [&new.name],
        |row| row.get(0),
    )?;
    if taken {
        return Ok(Err(DeviceError::NameTaken(new.name.clone())));
    }
    tx.execute(
        "INSERT INTO devices (id, token_hash, name, role, station, paired_at, paired_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new.id,
            new.token_hash,
            new.name,
            new.role.as_str(),
            new.station,
            now_ms,
            new.paired_by
        ],
    )?;
    Ok(Ok(Device {
        id: new.id.clone(),
        name: new.name.clone(),
        role: new.role,
        station: new.station.clone(),
        paired_at_ms: now_ms,
        paired_by: new.paired_by.clone(),
        revoked_at_ms: None,
    }))
}
