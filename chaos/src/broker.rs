//! A RabbitMQ node of the run's own (its own node name, ports, Mnesia and log directories), so
//! the harness can stop, kill and start it without touching the machine's broker. Started
//! detached with `rabbitmq-server`, waited for with `rabbitmqctl wait`; stopped and removed
//! when dropped. As root, Debian's wrappers run the node as the `rabbitmq` user: the directory
//! is handed to it.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Context;
use kitchen_testkit::dir::TempDir;

pub struct OwnBroker {
    pub port: u16,
    node: String,
    dist_port: u16,
    // Last: removed after the node is stopped.
    dir: TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl OwnBroker {
    /// Creates and starts the node (blocking: ~12 s on these machines).
    pub fn start(run: &str) -> anyhow::Result<Self> {
        let dir = TempDir::new("chaos-rabbitmq");
        std::fs::write(dir.path().join("plugins"), "[].\n")?;
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status();
        let broker = Self {
            port: free_port()?,
            node: format!("{run}@localhost"),
            // The distribution port must differ from the AMQP one (and be free).
            dist_port: free_port()?,
            dir,
        };
        broker.up()?;
        Ok(broker)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pid")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let base = self.dir.path();
        command
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", base.join("plugins"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq"))
            .stdin(std::process::Stdio::null());
        command
    }

    /// Starts the node and waits until it serves.
    pub fn up(&self) -> anyhow::Result<()> {
        let output = self
            .command("rabbitmq-server")
            .arg("-detached")
            .output()
            .context("rabbitmq-server runs")?;
        anyhow::ensure!(
            output.status.success(),
            "rabbitmq-server: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = self
            .command("timeout")
            .args(["90", "rabbitmqctl", "-n", &self.node, "wait"])
            .arg(self.pid_file())
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "rabbitmq node {} not up: {}",
            self.node,
            String::from_utf8_lossy(&output.stdout)
        );
        Ok(())
    }

    /// A clean stop (`rabbitmqctl stop`).
    pub fn stop(&self) {
        let _ = self
            .command("timeout")
            .args(["60", "rabbitmqctl", "-n", &self.node, "stop"])
            .output();
    }

    /// A crash: SIGKILL to the node's Erlang VM.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        // The node is gone when its port is.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
