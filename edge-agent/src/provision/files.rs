//! The files provisioning writes: atomically (a power cut leaves the old file or the new one),
//! the time zone link, and the card file overwritten before it is removed.

use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use super::ProvisionError;

pub(super) fn read_error(path: &Path, error: &std::io::Error) -> ProvisionError {
    ProvisionError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

pub(super) fn write_error(path: &Path, error: &std::io::Error) -> ProvisionError {
    ProvisionError::Write {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

pub(super) fn create_private_dir(dir: &Path) -> Result<(), ProvisionError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| write_error(dir, &error))
}

/// Writes a sibling temporary file, syncs it, renames it over `path` and syncs the directory:
/// after a power cut the file is either the old one or the new one, never half of each.
pub(super) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), ProvisionError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|error| write_error(dir, &error))?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.provision"));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|error| write_error(path, &error))
}

/// Whether `path` is a compiled tz database file (its `TZif` magic).
pub(super) fn is_zone_file(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"TZif")
}

/// Points the symlink `path` at `target`, replacing what is there in one rename.
pub(super) fn link_atomic(path: &Path, target: &Path) -> Result<(), ProvisionError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = dir.join(".localtime.provision");
    let link = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(target, &temporary)?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    link().map_err(|error| write_error(path, &error))
}

/// Overwrites the file's bytes in place with zeros and syncs them, so its content is gone from
/// the medium before it is unlinked (FAT rewrites a file's own clusters in place).
pub(super) fn scrub(path: &Path) -> Result<(), ProvisionError> {
    let overwrite = || zero(&mut std::fs::OpenOptions::new().write(true).open(path)?);
    match overwrite() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        result => result.map_err(|error| write_error(path, &error)),
    }
}

/// Overwrites an open file's bytes with zeros and syncs them (the file may already have been
/// replaced under its name: its own blocks are what is overwritten).
pub(super) fn zero(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::Seek as _;
    file.rewind()?;
    let len = file.metadata()?.len();
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

pub(super) fn remove(path: &Path) -> Result<(), ProvisionError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(write_error(path, &error)),
    }
}
