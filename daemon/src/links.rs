//! The TLS rule for every link that leaves the machine (docs/security.md, "TLS off the box"):
//! AMQP must be `amqps` and PostgreSQL `sslmode=verify-full` to any host that is not loopback
//! (127.0.0.0/8, `::1`, `localhost`). Both services check their URLs with these functions, so
//! the rule and its words are the same everywhere. Pure: the callers parse PostgreSQL URLs with
//! sqlx (which also applies `PGSSLMODE` and friends) and hand over the effective host and mode.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What counts as loopback, as the messages say it.
pub const LOOPBACK: &str = "127.0.0.0/8, ::1 or localhost";

/// Whether `host` (a name or an address, IPv6 with or without brackets) is this machine:
/// `localhost` (any case, with or without the final dot), 127.0.0.0/8 or `::1`. Anything else,
/// including a name that only resolves to loopback, is off the box.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(address) = host.parse::<Ipv4Addr>() {
        return address.is_loopback();
    }
    host.parse::<Ipv6Addr>()
        .is_ok_and(|address| address.is_loopback())
}

/// The host of a `scheme://[user[:password]@]host[:port][/path][?query]` URL, brackets of an
/// IPv6 address removed; `None` when the URL has no `://`. Never returns the password.
pub fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let address = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(bracketed) = address.strip_prefix('[') {
        return bracketed.split_once(']').map(|(host, _)| host);
    }
    Some(address.split_once(':').map_or(address, |(host, _)| host))
}

/// Checks an AMQP URL given as `key`: `amqps://` anywhere; `amqp://` only to a loopback host.
/// The message names the key and the host, never the URL (it holds the password). An empty
/// host is lapin's default, `localhost`.
pub fn check_amqp_url(key: &str, url: &str) -> Result<(), String> {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let host = url_host(url).unwrap_or_default();
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("amqps") => Ok(()),
        Some("amqp") if host.is_empty() || is_loopback_host(host) => Ok(()),
        Some("amqp") => Err(format!(
            "{key}: plaintext amqp:// to {host} is refused: a link off the box must use \
             amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
             {LOOPBACK} only"
        )),
        _ => Err(format!(
            "{key} must start with amqps:// (or amqp:// to {LOOPBACK})"
        )),
    }
}

/// Checks a PostgreSQL link given as `key`, from the host and the `sslmode` (`disable`,
/// `allow`, `prefer`, `require`, `verify-ca`, `verify-full`) sqlx would use: `verify-full`
/// anywhere, anything else only to loopback or a Unix socket (a host starting with `/`).
pub fn check_postgres_link(key: &str, host: &str, sslmode: &str) -> Result<(), String> {
    if sslmode == "verify-full" || host.starts_with('/') || is_loopback_host(host) {
        return Ok(());
    }
    Err(format!(
        "{key}: sslmode={sslmode} to {host} is refused: a link off the box needs \
         sslmode=verify-full (TLS with the server's certificate and host name verified); \
         other modes are allowed to {LOOPBACK} only"
    ))
}

/// Whether a plain-TCP link (the MQTT fleet channel, which has no TLS yet) leaves the box: the
/// warning to log, or `None` for loopback.
pub fn plaintext_warning(key: &str, host: &str) -> Option<String> {
    (!is_loopback_host(host)).then(|| {
        format!(
            "{key}: plaintext link to {host} (no TLS on this link yet): use a private network \
             or a VPN until it has TLS"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_slash_8_the_ipv6_one_and_localhost() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
            "localhost.",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.1.2.3",
            "128.0.0.1",
            "0.0.0.0",
            "::",
            "[2001:db8::1]",
            "localhost.example.com",
            "db.example.com",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_host_is_read_without_user_password_port_or_path() {
        let check =
            |url: &str, expected: Option<&str>| assert_eq!(url_host(url), expected, "{url}");
        check("amqp://guest:p%40ss@10.1.2.3:5672/%2f", Some("10.1.2.3"));
        check("amqps://broker.example.com/%2f", Some("broker.example.com"));
        check("amqp://u:p@[::1]:5672", Some("::1"));
        check("postgres://u@db?sslmode=disable", Some("db"));
        check("amqp://", Some(""));
        check("broker:5672", None);
    }

    #[test]
    fn amqp_must_be_tls_off_the_box() {
        assert_eq!(
            check_amqp_url("amqp_url", "amqps://k:pw@10.1.2.3:5671/%2f"),
            Ok(())
        );
        assert_eq!(
            check_amqp_url("amqp_url", "amqp://g:g@127.0.0.1:5672/%2f"),
            Ok(())
        );
        assert_eq!(
            check_amqp_url("amqp_url", "amqp://g:g@localhost/%2f"),
            Ok(())
        );
        assert_eq!(check_amqp_url("amqp_url", "amqp://g:g@[::1]:5672"), Ok(()));
        assert_eq!(
            check_amqp_url("amqp_url", "amqp://k:s3cret@10.1.2.3:5672/%2f"),
            Err(
                "amqp_url: plaintext amqp:// to 10.1.2.3 is refused: a link off the box must \
                 use amqps:// (TLS with the broker's certificate verified); amqp:// is allowed \
                 to 127.0.0.0/8, ::1 or localhost only"
                    .into()
            )
        );
        let error = check_amqp_url("AMQP_URL", "http://k:s3cret@broker").expect_err("scheme");
        assert_eq!(
            error,
            "AMQP_URL must start with amqps:// (or amqp:// to 127.0.0.0/8, ::1 or localhost)"
        );
    }

    #[test]
    fn postgres_must_verify_full_off_the_box() {
        assert_eq!(
            check_postgres_link("database_url", "db.example.com", "verify-full"),
            Ok(())
        );
        assert_eq!(
            check_postgres_link("database_url", "127.0.0.1", "prefer"),
            Ok(())
        );
        assert_eq!(
            check_postgres_link("database_url", "localhost", "disable"),
            Ok(())
        );
        assert_eq!(
            check_postgres_link("database_url", "/run/postgresql", "prefer"),
            Ok(())
        );
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            assert_eq!(
                check_postgres_link("database_url", "10.1.2.3", mode),
                Err(format!(
                    "database_url: sslmode={mode} to 10.1.2.3 is refused: a link off the box \
                     needs sslmode=verify-full (TLS with the server's certificate and host name \
                     verified); other modes are allowed to 127.0.0.0/8, ::1 or localhost only"
                ))
            );
        }
    }

    #[test]
    fn plaintext_mqtt_off_the_box_is_a_warning() {
        assert_eq!(plaintext_warning("mqtt_url", "127.0.0.1"), None);
        assert_eq!(
            plaintext_warning("mqtt_url", "fleet.example.com").as_deref(),
            Some(
                "mqtt_url: plaintext link to fleet.example.com (no TLS on this link yet): use a \
                 private network or a VPN until it has TLS"
            )
        );
    }
}
