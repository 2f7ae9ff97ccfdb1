//! How both sides reach the cloud PostgreSQL: the URL read as sqlx reads it (the query's
//! `sslmode`, `host`, … and the `PG*` environment variables), checked against the TLS rule
//! (`kitchen_daemon::links`: `sslmode=verify-full` unless the host is loopback) before any
//! connection is made. The options returned are the ones checked, so what connects is what was
//! allowed.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The name libpq and sqlx give a mode in a URL (`sslmode=…`).
pub fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// `url` (given as `key`, for the message) parsed and checked: refused when it is not a
/// PostgreSQL URL or would reach a host off the box without `sslmode=verify-full`. The message
/// names the key and the host, never the URL (it holds the password).
pub fn checked_options(key: &str, url: &str) -> Result<PgConnectOptions, String> {
    let options = PgConnectOptions::from_str(url.trim()).map_err(|error| {
        format!("{key} is not a PostgreSQL URL (postgres://user:password@host:port/database?sslmode=verify-full): {error}")
    })?;
    kitchen_daemon::links::check_postgres_link(
        key,
        options.get_host(),
        ssl_mode_name(options.get_ssl_mode()),
    )?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_and_host_sqlx_would_use_are_checked() {
        let refused = |url: &str| checked_options("database_url", url).expect_err(url);
        assert_eq!(
            refused("postgres://k:s3cret@10.1.2.3:5432/kitchen?sslmode=prefer"),
            "database_url: sslmode=prefer to 10.1.2.3 is refused: a link off the box needs \
             sslmode=verify-full (TLS with the server's certificate and host name verified); \
             other modes are allowed to 127.0.0.0/8, ::1 or localhost only"
        );
        // No sslmode: sqlx's default, prefer (silent plaintext) — refused off the box.
        assert!(refused("postgres://k:s3cret@db.example.com/kitchen").contains("sslmode=prefer"));
        assert!(
            refused("postgres://k@db.example.com/kitchen?sslmode=verify-ca")
                .contains("sslmode=verify-ca")
        );
        assert!(!refused("postgres://k:s3cret@10.1.2.3/kitchen").contains("s3cret"));
        let options = checked_options(
            "database_url",
            "postgres://k:pw@db.example.com:5433/kitchen?sslmode=verify-full",
        )
        .expect("verified");
        assert_eq!(
            (options.get_host(), options.get_port()),
            ("db.example.com", 5433)
        );
        checked_options(
            "database_url",
            "postgres://k:pw@127.0.0.1/kitchen?sslmode=disable",
        )
        .expect("loopback");
        checked_options("database_url", "postgres://k:pw@localhost/kitchen").expect("loopback");
    }
}
