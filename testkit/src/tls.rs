//! TLS made in the test: a certificate authority of the test's own (rcgen on ring), server
//! certificates it signs for `localhost` and `127.0.0.1`, and `TlsProxy`, a TLS-terminating TCP
//! proxy (tokio-rustls) that puts a verified TLS endpoint in front of a plaintext service (the
//! machine's RabbitMQ on 127.0.0.1:5672), so a test can reach it as `amqps://localhost:<port>`.

use std::{net::SocketAddr, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A server certificate signed by a [`TestCa`], with its private key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `common_name`, its key made now.
    pub fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca certificate"),
        }
    }

    /// The CA certificate (PEM): what a client is given to trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`, signed by this CA.
    pub fn server_cert(&self) -> ServerCert {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "localhost");
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

impl ServerCert {
    /// A rustls server configuration presenting this certificate (ring, the workspace's one
    /// crypto provider).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server certificate and key");
        Arc::new(config)
    }
}

/// Terminates TLS on `addr` (127.0.0.1, a free port) with a certificate for `localhost` and
/// forwards the plaintext to `upstream`; stops when dropped. A client that fails the handshake
/// (it does not trust the CA) is dropped before anything reaches `upstream`.
#[derive(Debug)]
pub struct TlsProxy {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl TlsProxy {
    pub async fn start(upstream: SocketAddr, cert: &ServerCert) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tls proxy binds");
        let addr = listener.local_addr().expect("tls proxy addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
        let stop = CancellationToken::new();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    () = accept_stop.cancelled() => return,
                };
                let _ = client.set_nodelay(true);
                let acceptor = acceptor.clone();
                let connection_stop = accept_stop.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = connection_stop.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, stop }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
