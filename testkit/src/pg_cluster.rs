//! A PostgreSQL cluster of the test's own, with TLS: `initdb` (Debian's PostgreSQL 15 in
//! `/usr/lib/postgresql/15/bin`, or `$PG_BIN`) into a temporary directory, `ssl = on` with a
//! server certificate for `localhost`/`127.0.0.1` signed by the test's CA, started with
//! `pg_ctl` on a free port of 127.0.0.1 (its Unix socket in the temporary directory), stopped
//! and removed when dropped; `stop` (`pg_ctl stop -m fast|immediate`) and `restart` keep the
//! data. Trust authentication, and plain `host` lines as well as TLS: a client that fell back to
//! plaintext would get in, so a test can tell that it did not.
//!
//! PostgreSQL refuses to run as root: as root (CI here), every command runs as the `postgres`
//! user through `runuser`, and the directory is handed to that user.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{dir::TempDir, tls::ServerCert};

/// A running cluster; `url` connects as the superuser `postgres`.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    data: PathBuf,
    as_root: bool,
    // Last: removed after the cluster is stopped.
    dir: TempDir,
}

fn pg_bin(tool: &str) -> PathBuf {
    let dir = std::env::var_os("PG_BIN").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    );
    dir.join(tool)
}

fn id(flag: &str) -> u32 {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the postgres user exists")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

impl PgCluster {
    /// Creates and starts a cluster presenting `cert` (blocking: a few seconds).
    pub fn start(cert: &ServerCert) -> Self {
        let dir = TempDir::new("pg-cluster");
        let as_root = is_root();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            port,
            data,
            as_root,
            dir,
        };
        cluster.chown(cluster.dir.path());
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        for (name, text, mode) in [
            ("server.crt", &cert.cert_pem, 0o644),
            ("server.key", &cert.key_pem, 0o600),
        ] {
            let path = cluster.data.join(name);
            std::fs::write(&path, text).expect("certificate written");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("mode");
            cluster.chown(&path);
        }
        let settings = format!(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 30\n",
            cluster.dir.path().display()
        );
        let conf = cluster.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("postgresql.conf written");
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        cluster
    }

    /// `postgres://postgres@localhost:<port>/postgres` plus `query` (e.g.
    /// `?sslmode=verify-full`).
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres{query}",
            self.port
        )
    }

    /// Stops the server with `pg_ctl stop -m <mode>` (`fast`, `immediate`), keeping its data:
    /// a fault the chaos harness injects.
    pub fn stop(&self, mode: &str) {
        let data = self.data.display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", mode, "-w", "-t", "60", "stop"],
        );
    }

    /// Starts the stopped server again on the same port and data (crash recovery included
    /// after an `immediate` stop).
    pub fn restart(&self) {
        let data = self.data.display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
        );
    }

    fn chown(&self, path: &Path) {
        if self.as_root {
            std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).expect("chown");
        }
    }

    /// Runs a PostgreSQL tool (as `postgres` when we are root), panicking with its output if
    /// it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let binary = pg_bin(tool);
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|error| panic!("{} runs: {error}", binary.display()));
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let binary = pg_bin("pg_ctl");
        let data = self.data.display().to_string();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_root {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&binary)
                .args(args)
                .output()
        } else {
            Command::new(&binary).args(args).output()
        };
    }
}
