//! Kitchens in PostgreSQL (schema `kitchen`, migration `20261122000002_kitchen_sync.sql`):
//! provisioning a kitchen and the database role its box logs in as (`provision`), and the
//! kitchen's reference data — import from a reference file, export, versioning (`reference`),
//! and the kitchen's queue, bindings and box user on RabbitMQ (`broker`).
//! What the boxes push and how they are confined to their kitchen is in docs/sync.md.

pub mod broker;
pub mod enrol;
mod provision;
mod reference;
pub mod scram;

use std::path::Path;

use kitchen_proto::reference::ReferenceError;
use secrecy::SecretString;

pub use provision::{Provisioned, add_kitchen};
pub use reference::{
    REFERENCE_CHANNEL, export_reference, import_reference, kitchen_exists, load_reference,
};

/// The group role every kitchen box's role is a member of (created by the migration).
pub const AGENT_ROLE: &str = "kitchen_agent";

/// Why a kitchen operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KitchenError {
    #[error("unknown kitchen {kitchen_id:?} (add it with `cloud-relay kitchen add`)")]
    UnknownKitchen { kitchen_id: String },
    #[error("invalid kitchen id {kitchen_id:?}: {reason}")]
    InvalidKitchenId {
        kitchen_id: String,
        reason: &'static str,
    },
    #[error("invalid role name {role:?}: {reason}")]
    InvalidRole { role: String, reason: String },
    #[error("role {role:?} is already the box of kitchen {kitchen_id:?}")]
    RoleTaken { role: String, kitchen_id: String },
    #[error("role {role:?} cannot be a kitchen box: {reason}")]
    UnsafeRole { role: String, reason: &'static str },
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("password file {path}: {reason}")]
    InvalidPassword { path: String, reason: &'static str },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "item {item_id:?}: {field} = {value} is more than the database holds (at most {})",
        i32::MAX
    )]
    OutOfRange {
        item_id: String,
        field: &'static str,
        value: u32,
    },
    #[error("kitchen {kitchen_id:?}: the stored reference is invalid: {source}")]
    StoredReference {
        kitchen_id: String,
        source: ReferenceError,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<kitchen_cloud_schema::LoadError> for KitchenError {
    fn from(error: kitchen_cloud_schema::LoadError) -> Self {
        match error {
            kitchen_cloud_schema::LoadError::Invalid { kitchen_id, source } => {
                Self::StoredReference { kitchen_id, source }
            }
            kitchen_cloud_schema::LoadError::Database(error) => Self::Database(error),
        }
    }
}

/// Reads a role's password from a file (a systemd credential, a secret mounted by the deployer):
/// one line of printable ASCII; one trailing newline is ignored. Never from the command line,
/// where every user of the machine sees it in the process list.
pub fn read_password_file(path: &Path) -> Result<SecretString, KitchenError> {
    let text = std::fs::read_to_string(path).map_err(|source| KitchenError::PasswordFile {
        path: path.display().to_string(),
        source,
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&text);
    let invalid = |reason| {
        Err(KitchenError::InvalidPassword {
            path: path.display().to_string(),
            reason,
        })
    };
    if password.is_empty() {
        return invalid("the password is empty");
    }
    // Printable ASCII: no SASLprep differences between this verifier and PostgreSQL's.
    if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return invalid("the password must be one line of printable ASCII");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "password file is readable by group or others");
        }
    }
    Ok(SecretString::from(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn password_files_hold_one_line_of_printable_ascii() {
        let dir = std::env::temp_dir().join(format!("relay-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let check = |content: &str, expected: Result<&str, &str>| {
            let path = dir.join("password");
            std::fs::write(&path, content).expect("write");
            let result = read_password_file(&path);
            match (result, expected) {
                (Ok(password), Ok(expected)) => assert_eq!(password.expose_secret(), expected),
                (Err(error), Err(expected)) => {
                    assert!(error.to_string().ends_with(expected), "{error}")
                }
                (result, expected) => panic!("{content:?}: {result:?}, expected {expected:?}"),
            }
        };
        check("s3cret pass\n", Ok("s3cret pass"));
        check("s3cret\r\n", Ok("s3cret"));
        check("s3cret", Ok("s3cret"));
        check(" padded \n", Ok(" padded "));
        check("\n", Err("the password is empty"));
        check("", Err("the password is empty"));
        check(
            "two\nlines\n",
            Err("the password must be one line of printable ASCII"),
        );
        check(
            "pässword",
            Err("the password must be one line of printable ASCII"),
        );
        let missing = read_password_file(&dir.join("missing")).expect_err("missing");
        assert!(
            missing.to_string().starts_with("cannot read password file"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
