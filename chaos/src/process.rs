//! A service run as a real child process under a supervisor that restarts it when it dies, as
//! systemd's `Restart=always` does in production; the harness SIGKILLs it to inject a crash.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{process::Command, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// How long the supervisor waits before starting a dead process again (systemd's `RestartSec`).
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// A supervised child process: `program` with `env`, its stderr appended to `log`.
pub struct Supervised {
    pid: Arc<Mutex<Option<u32>>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn start(name: &str, program: PathBuf, env: Vec<(String, String)>, log: PathBuf) -> Self {
        let pid = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            name.to_owned(),
            program,
            env,
            log,
            pid.clone(),
            stop.clone(),
        ));
        Self {
            pid,
            stop,
            task: Some(task),
        }
    }

    /// SIGKILLs the running process (the supervisor starts it again); false if none was running.
    pub fn kill(&self) -> bool {
        let Some(pid) = *self.pid.lock().unwrap_or_else(PoisonError::into_inner) else {
            return false;
        };
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Stops supervising and ends the process with SIGTERM (SIGKILL after 10 s).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // On an early return or a panic: the child has `kill_on_drop`, the task ends with it.
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn supervise(
    name: String,
    program: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    pid: Arc<Mutex<Option<u32>>>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_or_else(|_| Stdio::null(), Stdio::from);
        let spawned = Command::new(&program)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                eprintln!("chaos: {name} does not start: {error}");
                tokio::time::sleep(RESTART_DELAY).await;
                continue;
            }
        };
        *pid.lock().unwrap_or_else(PoisonError::into_inner) = child.id();
        tokio::select! {
            _ = child.wait() => {}
            () = stop.cancelled() => {
                if let Some(id) = child.id() {
                    let _ = std::process::Command::new("kill").args(["-TERM", &id.to_string()]).status();
                }
                if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
            }
        }
        *pid.lock().unwrap_or_else(PoisonError::into_inner) = None;
        tokio::select! {
            () = tokio::time::sleep(RESTART_DELAY) => {}
            () = stop.cancelled() => {}
        }
    }
}
