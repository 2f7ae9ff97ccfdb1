//! Enrolment (`edge-agent enrol`, run as root by `edge-agent-enrol.service` once the network is
//! up; docs/security.md "Enrolment"): the one-time token provisioning put in the credential
//! store is exchanged at the relay (`POST <enrol_url>`, HTTPS with the relay's certificate
//! checked against the CA bundle and the web PKI roots) for the kitchen's own credentials —
//! `amqp_url`, `database_url` and, when the relay issues one, `mqtt_password` — which go to the
//! credential store only. The token is then overwritten and removed.
//!
//! The relay refusing the token (403: unknown, used, expired, another kitchen's) is final: the
//! token is removed and the reason written to `provision_error_file`, which the displays show.
//! Anything else (no network, the relay or its broker down) keeps the token; the unit tries
//! again. The relay marks the token used only with the credentials committed, so a lost answer
//! needs a new token (`cloud-relay kitchen enrol-token`): the credentials it carried are never
//! shown again.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use crate::{
    config::{CaBundle, Config},
    provision::{CredStore, ProvisionError},
};

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Checks `enrol_url`: `https://` anywhere, `http://` only to this machine (a test relay).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = Target::parse(url)?;
    if parsed.tls || kitchen_daemon::links::is_loopback_host(&parsed.host) {
        return Ok(());
    }
    Err(format!(
        "enrol_url: plaintext http:// to {} is refused: the token and the credentials it buys \
         travel over https:// only (http:// is allowed to {})",
        parsed.host,
        kitchen_daemon::links::LOOPBACK
    ))
}

/// Where the request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, at least `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let expected = || format!("enrol_url {url:?} is not an http(s)://host[:port]/path URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(expected)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(expected()),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(expected());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(expected)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(port) => port.parse().map_err(|_| expected())?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// What the relay answers on success.
#[derive(Deserialize)]
struct Credentials {
    kitchen_id: String,
    amqp_url: String,
    database_url: Option<String>,
    mqtt_password: Option<String>,
}

/// Why enrolment did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// Final: the relay refused the token (it has been removed).
    #[error("the relay refused the enrolment token: {0}")]
    Refused(String),
    /// Worth trying again later: the token is kept.
    #[error("enrolment failed (will try again): {0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] ProvisionError),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No token in the credential store: enrolled already, or never asked to.
    NothingToDo,
    /// The credentials were stored and the token removed.
    Enrolled {
        kitchen_id: String,
        database: bool,
        mqtt: bool,
    },
}

/// One enrolment: the config as the agent loads it, the store the token is in and the
/// credentials go to.
pub struct Enrolment {
    pub config: Config,
    pub store: CredStore,
    /// Where a refusal is recorded (the config's `provision_error_file`, else
    /// `provision-error` beside the config file).
    pub error_file: PathBuf,
}

impl Enrolment {
    pub async fn run(&self) -> Result<Outcome, EnrolError> {
        let Some(token) = self.store.read("enrol_token")? else {
            return Ok(Outcome::NothingToDo);
        };
        let token = token.trim();
        let url = self
            .config
            .enrol_url
            .as_deref()
            .ok_or_else(|| self.refuse("enrol_url is not set".into()))?;
        check_url(url).map_err(|reason| self.refuse(reason))?;
        let ca = self.config.ca_bundle().map_err(EnrolError::Failed)?;
        let body = serde_json::json!({ "kitchen_id": self.config.kitchen_id, "token": token });
        let (status, answer) =
            tokio::time::timeout(TIMEOUT, post(url, ca.as_ref(), body.to_string()))
                .await
                .map_err(|_| {
                    EnrolError::Failed(format!("no answer from {url} within {TIMEOUT:?}"))
                })?
                .map_err(EnrolError::Failed)?;
        let reason = || {
            serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|value| value["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}"))
        };
        match status {
            StatusCode::OK => {}
            StatusCode::FORBIDDEN => return Err(self.refuse(reason())),
            _ => return Err(EnrolError::Failed(format!("{url}: {}", reason()))),
        }
        let credentials: Credentials = serde_json::from_slice(&answer).map_err(|_| {
            EnrolError::Failed(format!("{url}: the answer is not the expected credentials"))
        })?;
        if credentials.kitchen_id != self.config.kitchen_id {
            return Err(EnrolError::Failed(format!(
                "{url}: the credentials are for kitchen {:?}, not {:?}",
                credentials.kitchen_id, self.config.kitchen_id
            )));
        }
        self.store.write("amqp_url", &credentials.amqp_url)?;
        if let Some(url) = &credentials.database_url {
            self.store.write("database_url", url)?;
        }
        if let Some(password) = &credentials.mqtt_password {
            self.store.write("mqtt_password", password)?;
        }
        self.store.remove("enrol_token")?;
        let _ = std::fs::remove_file(&self.error_file);
        Ok(Outcome::Enrolled {
            kitchen_id: credentials.kitchen_id,
            database: credentials.database_url.is_some(),
            mqtt: credentials.mqtt_password.is_some(),
        })
    }

    /// A final refusal: the token goes, the reason stays for the displays.
    fn refuse(&self, reason: String) -> EnrolError {
        if let Err(error) = self.store.remove("enrol_token") {
            return error.into();
        }
        let _ = std::fs::write(&self.error_file, format!("enrolment: {reason}\n"));
        EnrolError::Refused(reason)
    }
}

/// POSTs `body` (JSON) to `url`; the status and at most [`MAX_ANSWER`] bytes of the answer.
async fn post(
    url: &str,
    ca: Option<&CaBundle>,
    body: String,
) -> Result<(StatusCode, Bytes), String> {
    let target = Target::parse(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|error| format!("cannot reach {}:{}: {error}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    if !target.tls {
        return exchange(tcp, &target, body).await;
    }
    let config = kitchen_daemon::links::tls_client_config(ca.map(|ca| ca.pem.as_str()))
        .map_err(|error| format!("ca_file: {error}"))?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|error| format!("enrol_url host {:?}: {error}", target.host))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|error| format!("TLS with {}: {error}", target.host))?;
    exchange(tls, &target, body).await
}

async fn exchange<S>(
    stream: S,
    target: &Target,
    body: String,
) -> Result<(StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    let driver = tokio::spawn(connection);
    let request = Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.host_header())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("edge-agent/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("{}: {error}", target.host))?;
    let status = response.status();
    let answer = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|error| format!("{}: reading the answer: {error}", target.host))?
        .to_bytes();
    driver.abort();
    Ok((status, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_only_https_leaves_the_box() {
        assert_eq!(
            Target::parse("https://relay.example.com/enrol").expect("ok"),
            Target {
                tls: true,
                host: "relay.example.com".into(),
                port: 443,
                path: "/enrol".into()
            }
        );
        let target = Target::parse("http://[::1]:8001/enrol?x=1").expect("ok");
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("::1", 8001, "/enrol?x=1")
        );
        assert_eq!(target.host_header(), "[::1]:8001");
        assert_eq!(Target::parse("https://relay:8443").expect("ok").path, "/");
        assert!(check_url("https://relay.example.com/enrol").is_ok());
        assert!(check_url("http://127.0.0.1:8001/enrol").is_ok());
        assert_eq!(
            check_url("http://relay.example.com/enrol").expect_err("plaintext"),
            "enrol_url: plaintext http:// to relay.example.com is refused: the token and the \
             credentials it buys travel over https:// only (http:// is allowed to 127.0.0.0/8, \
             ::1 or localhost)"
        );
        for bad in [
            "relay/enrol",
            "ftp://relay/enrol",
            "https://user:pw@relay/enrol",
            "https://relay:x/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
