//! PostgreSQL: the pool, migrations, the batched webhook writers and the outbox queries.

mod ingest;
mod model;
pub mod outbox;
mod rows;
mod write;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use ingest::{Ingest, IngestError};
pub use model::{Incoming, Outcome};

/// The relay's migrations, embedded in the binary (`cloud-relay/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A lazily connecting pool: the relay starts (and answers 503) while PostgreSQL is down.
/// `ca_pem` (the relay's CA bundle) is trusted for the server's certificate beside the web PKI
/// roots.
pub fn pool(
    url: &secrecy::SecretString,
    ca_pem: Option<&str>,
    size: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    let mut options: PgConnectOptions = url.expose_secret().parse()?;
    if let Some(pem) = ca_pem {
        options = options.ssl_root_cert_from_pem(pem.as_bytes().to_vec());
    }
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

/// Whether an error means "PostgreSQL is unreachable" (503) rather than "this statement failed".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
        // 57P01 admin_shutdown, 57P03 cannot_connect_now, 53300 too_many_connections
        matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
    }))
}
