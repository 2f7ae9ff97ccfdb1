//! The read pool: a few read connections to the store, reused, for the LAN API and the event
//! streams (the writer thread has its own connection).

use std::{path::PathBuf, sync::Mutex};

use kitchen_daemon::sync::LockExt;

use super::{Store, StoreError};

/// Read connections open at most.
const READERS: usize = 4;

/// Read connections to the store, at most `READERS` open, reused; the writer thread has its
/// own. A reader waits for a free connection rather than opening more: each holds a page cache,
/// and fifty tablets reconnecting at once must not mean fifty connections.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(READERS),
        }
    }

    /// Runs `read` on a connection (opening one when none is idle).
    pub async fn with<T>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.ok();
        let idle = self.idle.lock_or_recover().pop();
        let store = match idle {
            Some(store) => store,
            None => Store::open_reader(&self.path)?,
        };
        let result = read(&store);
        self.idle.lock_or_recover().push(store);
        result
    }

    /// Like [`Readers::with`], on a blocking thread: for a long read (a report) that must not
    /// hold up the runtime's workers, which serve the tablets' streams.
    pub async fn with_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.ok();
        let idle = self.idle.lock_or_recover().pop();
        let path = self.path.clone();
        let (store, result) = tokio::task::spawn_blocking(move || {
            let store = match idle {
                Some(store) => store,
                None => Store::open_reader(&path)?,
            };
            let result = read(&store);
            Ok::<_, StoreError>((store, result))
        })
        .await
        .map_err(|error| StoreError::ReadStopped(error.to_string()))??;
        self.idle.lock_or_recover().push(store);
        result
    }
}
