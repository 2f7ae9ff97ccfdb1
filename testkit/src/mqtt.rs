//! A Mosquitto broker of the test's own: a free port on 127.0.0.1, no anonymous access, a
//! password file made with `mosquitto_passwd` and the ACL file the project ships
//! (`cloud-relay/mosquitto/acl`), so the topic rights under test are the real ones. It can be
//! stopped and started again on the same port with its persistence (retained messages,
//! sessions, queued messages) kept, and is killed when the guard drops. `start_with_tls` adds
//! a TLS listener with a certificate from a CA made in the test (`crate::tls`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{dir::TempDir, tls::ServerCert};

/// The ACL the project ships for production brokers.
pub const ACL: &str = include_str!("../../cloud-relay/mosquitto/acl");
/// The relays' user name in that ACL, and its password in every test broker.
pub const RELAY_USER: &str = "relay";
pub const RELAY_PASSWORD: &str = "relay-test-password";

#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    tls_port: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker that knows the relay's user and `users` (name, password). Panics when
    /// `mosquitto` is missing (scripts/services installs it).
    pub fn start(users: &[(&str, &str)]) -> Self {
        Self::start_listening(users, None)
    }

    /// As `start`, with a second listener on another port speaking TLS with `cert` (the same
    /// users and ACL on both): `mqtts://localhost:<tls_port>`.
    pub fn start_with_tls(users: &[(&str, &str)], cert: &ServerCert) -> Self {
        Self::start_listening(users, Some(cert))
    }

    fn start_listening(users: &[(&str, &str)], tls: Option<&ServerCert>) -> Self {
        let dir = TempDir::new("mosquitto");
        let port = free_port();
        let mut broker = Self {
            port,
            tls_port: tls.map(|_| free_port()),
            dir,
            child: None,
        };
        broker.add_user(RELAY_USER, RELAY_PASSWORD);
        for (user, password) in users {
            broker.add_user(user, password);
        }
        std::fs::write(broker.dir.path().join("acl"), ACL).expect("acl file");
        let mut config = format!(
            "per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous false\n\
             password_file {dir}/passwd\n\
             acl_file {dir}/acl\n\
             persistence true\n\
             persistence_location {dir}/\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type error\nlog_type warning\nlog_type notice\n\
             max_queued_messages 10000\n\
             max_inflight_messages 100\n",
            dir = broker.dir.path().display()
        );
        if let (Some(cert), Some(tls_port)) = (tls, broker.tls_port) {
            let dir = broker.dir.path();
            std::fs::write(dir.join("server.pem"), &cert.cert_pem).expect("certificate");
            std::fs::write(dir.join("server.key"), &cert.key_pem).expect("key");
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\n\
                 certfile {dir}/server.pem\n\
                 keyfile {dir}/server.key\n",
                dir = dir.display()
            ));
        }
        std::fs::write(broker.config_path(), config).expect("mosquitto config");
        broker.start_again();
        broker
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:<port>` (no credentials: each client brings its own).
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://localhost:<tls port>` for a broker started with TLS (the certificate names
    /// `localhost`).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with start_with_tls");
        format!("mqtts://localhost:{port}")
    }

    /// The directory holding `passwd`, `acl`, the config and the broker's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    /// Adds (or changes) a user in the password file; a running broker rereads it (SIGHUP).
    pub fn add_user(&mut self, user: &str, password: &str) {
        let file = self.password_file();
        let mut command = Command::new("mosquitto_passwd");
        if !file.exists() {
            command.arg("-c");
        }
        let status = command
            .arg("-b")
            .arg(&file)
            .arg(user)
            .arg(password)
            .stdout(Stdio::null())
            .status()
            .expect("mosquitto_passwd runs (scripts/services installs mosquitto)");
        assert!(status.success(), "mosquitto_passwd failed for {user}");
        self.reload();
    }

    /// Asks the running broker to reread its password and ACL files (SIGHUP).
    pub fn reload(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "HUP");
            // Mosquitto applies a SIGHUP at its next loop turn.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistence) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Kills the broker (SIGKILL: what was not saved is lost) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the same files; returns once it listens.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (scripts/services installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("mosquitto exited ({status}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's log so far (errors, warnings and notices), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A port nobody listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
