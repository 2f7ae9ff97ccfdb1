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

/// Work done after the process died and before it starts again.
type Between = Box<dyn FnOnce() + Send>;
/// The running process's pid, and what to do before its next start.
type Shared = (Arc<Mutex<Option<u32>>>, Arc<Mutex<Option<Between>>>);

/// A supervised child process: `program` with `env`, its stderr appended to `log`.
pub struct Supervised {
    pid: Arc<Mutex<Option<u32>>>,
    between: Arc<Mutex<Option<Between>>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn start(name: &str, program: PathBuf, env: Vec<(String, String)>, log: PathBuf) -> Self {
        let pid = Arc::new(Mutex::new(None));
        let between: Arc<Mutex<Option<Between>>> = Arc::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            name.to_owned(),
            program,
            env,
            log,
            (pid.clone(), between.clone()),
            stop.clone(),
        ));
        Self {
            pid,
            between,
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

    /// SIGKILLs the running process and runs `between` before the supervisor starts it again
    /// (the card dies: a new one is flashed); false, and `between` dropped, if none was running.
    pub fn kill_then(&self, between: impl FnOnce() + Send + 'static) -> bool {
        let mut slot = self.between.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(Box::new(between));
        let killed = self.kill();
        if !killed {
            *slot = None;
        }
        killed
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
    (pid, between): Shared,
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
        let between = between
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(between) = between {
            between();
        }
        tokio::select! {
            () = tokio::time::sleep(RESTART_DELAY) => {}
            () = stop.cancelled() => {}
        }
    }
}
