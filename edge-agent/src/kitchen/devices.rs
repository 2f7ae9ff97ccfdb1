//! Pairing and revocation, on the writer's connection like every other write.

use super::Kitchen;
use crate::{
    device::{Device, DeviceError},
    store::{NewDevice, PairingCode, StoreError},
};

impl Kitchen {
    pub fn pair_device(
        &mut self,
        new: &NewDevice,
        now_ms: i64,
    ) -> Result<Result<Device, DeviceError>, StoreError> {
        self.store.pair_device(new, now_ms)
    }

    /// Pairs with the provisioning code, unless it has paired a device already (`None`).
    pub fn pair_bootstrap(
        &mut self,
        new: &NewDevice,
        now_ms: i64,
    ) -> Result<Option<Result<Device, DeviceError>>, StoreError> {
        if self.store.bootstrap_used()? {
            return Ok(None);
        }
        self.store.pair_device(new, now_ms).map(Some)
    }

    pub fn pair_with_code(
        &mut self,
        code_hash: &str,
        new: NewDevice,
        now_ms: i64,
    ) -> Result<Option<Result<Device, DeviceError>>, StoreError> {
        self.store.pair_with_code(code_hash, new, now_ms)
    }

    pub fn add_pairing_code(&mut self, code: &PairingCode) -> Result<(), StoreError> {
        self.store.add_pairing_code(code)
    }

    pub fn revoke_device(&mut self, id: &str, now_ms: i64) -> Result<Option<Device>, StoreError> {
        self.store.revoke_device(id, now_ms)
    }
}
