//! The TLS rule for every link that leaves the machine (docs/security.md, "TLS off the box"):
//! AMQP must be `amqps`, MQTT `mqtts` and PostgreSQL `sslmode=verify-full` to any host that is
//! not loopback (127.0.0.0/8, `::1`, `localhost`). Both services check their URLs with these
//! functions, so the rule and its words are the same everywhere. The checks are pure: the
//! callers parse PostgreSQL URLs with sqlx (which also applies `PGSSLMODE` and friends) and hand
//! over the effective host and mode. Also here: a CA bundle's check and the rustls client config
//! of the links rustls makes itself.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

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

/// Checks an MQTT link given as `key` to `host`: TLS (`mqtts://`) anywhere; plain `mqtt://` only
/// to a loopback host.
pub fn check_mqtt_link(key: &str, host: &str, tls: bool) -> Result<(), String> {
    if tls || is_loopback_host(host) {
        return Ok(());
    }
    Err(format!(
        "{key}: plaintext mqtt:// to {host} is refused: a link off the box must use mqtts:// \
         (TLS with the broker's certificate verified); mqtt:// is allowed to {LOOPBACK} only"
    ))
}

/// A CA bundle: PEM text holding at least one certificate, each one parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub pem: String,
    pub certificates: usize,
}

/// Checks that `pem` holds at least one certificate and that each one parses as X.509 (a
/// trust anchor rustls can use); anything else in the text (keys, garbage) is refused.
pub fn parse_ca_pem(pem: &str) -> Result<CaBundle, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let certificate =
            certificate.map_err(|error| format!("certificate {}: {error}", index + 1))?;
        roots
            .add(certificate)
            .map_err(|error| format!("certificate {}: {error}", index + 1))?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(CaBundle {
        pem: pem.to_owned(),
        certificates: roots.len(),
    })
}

/// The TLS client settings of a verified link that rustls makes itself (the fleet channel,
/// enrolment): the web PKI roots compiled in plus every certificate of `ca_pem` (a CA bundle
/// already checked by its loader), the ring provider, TLS 1.2 and 1.3. The server's certificate
/// and host name are verified; there is no way to turn that off.
pub fn tls_client_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in CertificateDer::pem_slice_iter(ca_pem.unwrap_or_default().as_bytes()) {
        let certificate = certificate.map_err(|error| format!("CA bundle: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("CA bundle: {error}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
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
    fn a_ca_bundle_must_hold_certificates_that_parse() {
        assert_eq!(
            parse_ca_pem("hello"),
            Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into())
        );
        let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let error = parse_ca_pem(garbage).expect_err("not X.509");
        assert!(error.starts_with("certificate 1: "), "{error}");
    }

    #[test]
    fn mqtt_must_be_tls_off_the_box() {
        assert_eq!(check_mqtt_link("mqtt_url", "127.0.0.1", false), Ok(()));
        assert_eq!(check_mqtt_link("mqtt_url", "localhost", false), Ok(()));
        assert_eq!(
            check_mqtt_link("mqtt_url", "fleet.example.com", true),
            Ok(())
        );
        assert_eq!(
            check_mqtt_link("[mqtt] url", "fleet.example.com", false),
            Err(
                "[mqtt] url: plaintext mqtt:// to fleet.example.com is refused: a link off the \
                 box must use mqtts:// (TLS with the broker's certificate verified); mqtt:// is \
                 allowed to 127.0.0.0/8, ::1 or localhost only"
                    .into()
            )
        );
    }
}
