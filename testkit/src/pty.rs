//! Pseudo-terminals standing in for serial scanners: a test writes to the master what a scanner
//! would send; the agent opens the slave (through a symlink the test points, as udev points
//! `/dev/serial/by-id/...`). Closing the master is unplugging the scanner.

use std::{
    fs::File,
    io::Write,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use nix::{
    fcntl::OFlag,
    pty::{grantpt, posix_openpt, ptsname_r, unlockpt},
    sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr},
};

/// A pty pair whose slave nobody has open yet.
pub struct Pty {
    master: Arc<File>,
    /// `/dev/pts/N`.
    pub slave: PathBuf,
}

impl Pty {
    pub fn open() -> Self {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).expect("posix_openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let slave = PathBuf::from(ptsname_r(&master).expect("ptsname"));
        // Raw from the start (termios set through the master applies to the slave): a fresh
        // pty turns CR into LF and echoes, which a scanner's serial line does not. The agent
        // sets raw mode too when it opens the slave.
        let mut termios = tcgetattr(&master).expect("tcgetattr");
        cfmakeraw(&mut termios);
        tcsetattr(&master, SetArg::TCSANOW, &termios).expect("tcsetattr");
        Self {
            master: Arc::new(File::from(OwnedFd::from(master))),
            slave,
        }
    }

    /// The master side, to read what the agent writes to the device (a printer stand-in).
    pub fn master(&self) -> Arc<File> {
        self.master.clone()
    }

    /// Writes `bytes` as the scanner would, all of them. Off the async runtime: the write
    /// blocks while the pty's buffer is full, until the agent reads.
    pub async fn write(&self, bytes: impl Into<Vec<u8>>) {
        let master = self.master.clone();
        let bytes = bytes.into();
        tokio::task::spawn_blocking(move || (&*master).write_all(&bytes))
            .await
            .expect("joins")
            .expect("pty write");
    }
}

/// Points the symlink `link` at `target` in one step (a new link renamed over the old one).
pub fn point(link: &Path, target: &Path) {
    let new = link.with_extension("new");
    let _ = std::fs::remove_file(&new);
    std::os::unix::fs::symlink(target, &new).expect("symlink");
    std::fs::rename(&new, link).expect("rename symlink");
}
