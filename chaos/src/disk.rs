//! The agents' data disks: each agent's data directory is a size-limited tmpfs of its own,
//! mounted by the harness (it runs as root), so that one agent's disk can fill up without
//! touching the machine's. The disk-full fault writes a filler file until the filesystem
//! refuses a byte more, holds, then deletes it. Unmounted when dropped, also on failure;
//! `scripts/chaos` unmounts any left behind by a harness that was itself killed.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context;

/// The source name of the harness's mounts in `/proc/mounts`, `kitchen-chaos-<pid>` (what
/// `scripts/chaos` looks for if the harness was killed).
fn source() -> String {
    format!("kitchen-chaos-{}", std::process::id())
}
/// Room for a 30-minute run's SQLite file and its WAL, several times over.
pub const SIZE: &str = "256m";
const FILLER: &str = "chaos-filler";

#[derive(Debug)]
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={SIZE},mode=0700"),
                &source(),
            ])
            .arg(path)
            .status()
            .context("mount runs")?;
        anyhow::ensure!(
            status.success(),
            "mount -t tmpfs on {} failed (the harness must run as root)",
            path.display()
        );
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Fills the filesystem: a filler file as large as the free space, then single bytes until
    /// one is refused (ENOSPC). Returns the filler's size.
    pub fn fill(&self) -> std::io::Result<u64> {
        let mut file = std::fs::File::create(self.path.join(FILLER))?;
        let chunk = vec![0xa5u8; 1 << 20];
        let mut written = 0u64;
        for size in [chunk.len(), 4096, 1] {
            loop {
                match file.write(&chunk[..size]) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(error) if error.raw_os_error() == Some(28) => break,
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(written)
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.path.join(FILLER));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.free();
        // The agent was SIGKILLed a moment ago at most: its files close as it is reaped.
        for _ in 0..50 {
            let unmounted = Command::new("umount")
                .arg(&self.path)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if unmounted {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
