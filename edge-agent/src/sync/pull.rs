//! Down: the kitchen's reference data, polled by version, validated and swapped in through the
//! writer. The queries are `kitchen_cloud_schema`'s, the ones the relay's export uses.

use std::sync::{Arc, atomic::Ordering};

use kitchen_cloud_schema::LoadError;
use kitchen_daemon::clock::now_ms;
use sqlx::Executor;

use super::{SyncError, SyncTask};
use crate::status::ReferenceStatus;

impl SyncTask {
    /// Swaps in the kitchen's reference data when PostgreSQL has a version this box has not
    /// applied. A version that does not validate is refused (and said so) once.
    pub(super) async fn pull_reference(&self) -> Result<(), SyncError> {
        let current = self.stats.reference_version.load(Ordering::Relaxed);
        // One snapshot for the version and every table: the isolation level must be the
        // transaction's first statement.
        let mut tx = self.pool.begin().await?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        kitchen_cloud_schema::set_tenant(&mut tx, &self.kitchen_id).await?;
        let version = kitchen_cloud_schema::reference_version(&mut tx, &self.kitchen_id).await?;
        let Some(version) = version.filter(|v| *v != current) else {
            return Ok(());
        };
        // A version that does not validate is refused with the reason; the database failing is
        // an error of the round.
        let loaded = match kitchen_cloud_schema::load_reference(&mut tx, &self.kitchen_id).await {
            Ok(reference) => Ok(reference),
            Err(LoadError::Invalid { source, .. }) => Err(source),
            Err(LoadError::Database(error)) => return Err(error.into()),
        };
        tx.commit().await?;
        self.stats
            .reference_version
            .store(version, Ordering::Relaxed);
        match loaded {
            Ok(reference) => {
                let reference = Arc::new(reference);
                let source = format!("postgresql version {version}");
                self.writer.set_reference(reference.clone(), source).await?;
                self.reference.set(
                    reference,
                    ReferenceStatus::Synced {
                        version,
                        at_ms: now_ms(),
                    },
                );
                tracing::info!(version, "reference data from postgresql in use");
            }
            Err(reason) => {
                tracing::warn!(version, %reason, "reference data in postgresql refused; keeping the current copy");
                self.reference
                    .refuse_update(format!("version {version}: {reason}"));
            }
        }
        Ok(())
    }
}
