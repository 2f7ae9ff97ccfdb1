//! The box's secrets at rest (docs/security.md, "Secrets on the box"): systemd's credential
//! store. By default each secret is encrypted with `systemd-creds encrypt` (AES-256-GCM under
//! the host key `/var/lib/systemd/credential.secret`, and the TPM2 when the box has one) into
//! `/etc/credstore.encrypted/edge-agent.<name>`, which the units load with
//! `LoadCredentialEncrypted=`; the credential's name is sealed in with it, so a file renamed to
//! another credential does not decrypt. `Plaintext` writes the value itself (mode 0600), for
//! machines without `systemd-creds` and for tests.
//!
//! Writes are atomic (a power cut leaves the old secret or the new one); a secret that is
//! replaced or removed is overwritten with zeros first.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::{
    ProvisionError,
    files::{create_private_dir, remove, scrub, write_atomic, write_error, zero},
};

/// Where the secrets go and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredStore {
    /// `systemd-creds encrypt` (`program`) into `dir`.
    Encrypted { dir: PathBuf, program: PathBuf },
    /// The value itself, mode 0600, into `dir`.
    Plaintext { dir: PathBuf },
}

/// The image's encrypted store.
pub const ENCRYPTED_DIR: &str = "/etc/credstore.encrypted";
/// systemd's plaintext store: where earlier versions of the agent put the secrets.
pub const PLAINTEXT_DIR: &str = "/etc/credstore";

impl CredStore {
    /// `/etc/credstore.encrypted` through `systemd-creds`.
    pub fn standard() -> Self {
        Self::Encrypted {
            dir: PathBuf::from(ENCRYPTED_DIR),
            program: PathBuf::from("systemd-creds"),
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Self::Encrypted { dir, .. } | Self::Plaintext { dir } => dir,
        }
    }

    /// The file credential `name` lives in (`edge-agent.<name>`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("edge-agent.{name}"))
    }

    /// Credential `name`'s value (decrypted), `None` when it is not stored.
    pub fn read(&self, name: &str) -> Result<Option<String>, ProvisionError> {
        let path = self.path(name);
        let stored = match std::fs::read(&path) {
            Ok(stored) => stored,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(super::files::read_error(&path, &error)),
        };
        let value = match self {
            Self::Plaintext { .. } => stored,
            Self::Encrypted { program, .. } => run(program, "decrypt", name, &stored, &path)?,
        };
        let text = String::from_utf8(value)
            .map_err(|_| super::files::read_error(&path, &std::io::Error::other("not UTF-8")))?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
    }

    /// Stores `value` as credential `name`, replacing what was there.
    pub fn write(&self, name: &str, value: &str) -> Result<(), ProvisionError> {
        create_private_dir(self.dir())?;
        let path = self.path(name);
        let contents = match self {
            Self::Plaintext { .. } => format!("{value}\n").into_bytes(),
            Self::Encrypted { program, .. } => {
                run(program, "encrypt", name, value.as_bytes(), &path)?
            }
        };
        // The old value is overwritten only once the new one is in place: a power cut in
        // between leaves one of them, never neither.
        let old = std::fs::OpenOptions::new().write(true).open(&path).ok();
        write_atomic(&path, &contents, 0o600)?;
        if let Some(mut old) = old {
            zero(&mut old).map_err(|error| write_error(&path, &error))?;
        }
        Ok(())
    }

    /// Overwrites and removes credential `name` (nothing to do when it is not there).
    pub fn remove(&self, name: &str) -> Result<(), ProvisionError> {
        let path = self.path(name);
        scrub(&path)?;
        remove(&path)
    }
}

/// `systemd-creds encrypt|decrypt --name=<name> - -`: the input on stdin, the output on stdout,
/// so the secret never touches a file unencrypted.
fn run(
    program: &Path,
    verb: &str,
    name: &str,
    input: &[u8],
    path: &Path,
) -> Result<Vec<u8>, ProvisionError> {
    let failed = |reason: String| {
        write_error(
            path,
            &std::io::Error::other(format!("{} {verb}: {reason}", program.display())),
        )
    };
    let mut child = Command::new(program)
        .args([verb, &format!("--name={name}"), "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|error| failed(error.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // systemd-creds warns that a host key on unencrypted media is used anyway: expected on
        // a Pi, and not the reason it failed.
        let reason = stderr
            .lines()
            .filter(|line| !line.contains("not located on encrypted media"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(failed(format!("{} ({reason})", output.status)));
    }
    Ok(output.stdout)
}
