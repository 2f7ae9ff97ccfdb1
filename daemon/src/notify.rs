//! The sd_notify protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the Unix socket
//! named by `$NOTIFY_SOCKET`. Without that variable (not started by systemd, or not
//! `Type=notify`) every call does nothing, so the binaries and tests need no switch.
//!
//! Our own few lines rather than a crate: std's `UnixDatagram` does it, abstract socket names
//! (`@...`, what systemd uses inside containers and some setups) included, with no `unsafe`.

use std::{
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// Sends `state` (e.g. `"READY=1"`) to the service manager. `Ok(false)` when there is none.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => send_to(&path.to_string_lossy(), state).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `state` to the notification socket at `path` (`@name` is an abstract socket).
pub fn send_to(path: &str, state: &str) -> io::Result<()> {
    let address = socket_address(path)?;
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

fn socket_address(path: &str) -> io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract sockets are Linux only",
            ));
        }
    }
    if !path.starts_with('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name",
        ));
    }
    SocketAddr::from_pathname(path)
}

/// Logs instead of failing: a service that cannot reach its manager should still serve (the
/// manager will act on the missing message: a start timeout or a watchdog kill).
fn notify_or_log(state: &str) {
    if let Err(error) = notify(state) {
        tracing::warn!(%error, state, "cannot notify the service manager");
    }
}

/// The service is up: it may be marked started and units ordered after it may start.
pub fn ready() {
    notify_or_log("READY=1");
}

/// Shutdown has begun (systemd then expects the process to exit, not to ping).
pub fn stopping() {
    notify_or_log("STOPPING=1");
}

/// A one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    notify_or_log(&format!("STATUS={}", text.replace('\n', " ")));
}

/// The service's watchdog, if systemd set one (`WatchdogSec=`) for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    /// The timeout systemd enforces.
    pub timeout: Duration,
}

impl Watchdog {
    /// From `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, which, when set, must be this process).
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok();
        Self::from_vars(
            var("WATCHDOG_USEC"),
            var("WATCHDOG_PID"),
            std::process::id(),
        )
    }

    fn from_vars(usec: Option<String>, pid: Option<String>, own_pid: u32) -> Option<Self> {
        if let Some(pid) = pid
            && pid.trim().parse::<u32>().ok() != Some(own_pid)
        {
            return None;
        }
        let usec: u64 = usec?.trim().parse().ok()?;
        (usec > 0).then(|| Self {
            timeout: Duration::from_micros(usec),
        })
    }

    /// How often to ping: half the timeout, as sd_watchdog_enabled(3) recommends.
    pub fn interval(&self) -> Duration {
        self.timeout / 2
    }

    /// Tells systemd the service is alive; call it only from work that proves it.
    pub fn ping(&self) {
        notify_or_log("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_from_environment() {
        let check = |usec: Option<&str>, pid: Option<&str>, expected: Option<u64>| {
            let watchdog = Watchdog::from_vars(usec.map(Into::into), pid.map(Into::into), 42);
            assert_eq!(
                watchdog.map(|w| w.timeout),
                expected.map(Duration::from_micros),
                "{usec:?} {pid:?}"
            );
        };
        check(Some("30000000"), None, Some(30_000_000));
        check(Some("30000000"), Some("42"), Some(30_000_000));
        check(Some("30000000"), Some("43"), None);
        check(Some("0"), None, None);
        check(Some("soon"), None, None);
        check(None, Some("42"), None);
        let watchdog = Watchdog::from_vars(Some("30000000".into()), None, 1).expect("set");
        assert_eq!(watchdog.interval(), Duration::from_secs(15));
    }

    #[test]
    fn sends_datagrams_to_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("kitchen-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).expect("bind");
        send_to(path.to_str().expect("utf-8"), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).expect("clean up");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("kitchen-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let receiver = UnixDatagram::bind_addr(&address).expect("bind abstract");
        send_to(&format!("@{name}"), "WATCHDOG=1").expect("send");
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        let error = send_to("relative/path", "READY=1").expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
