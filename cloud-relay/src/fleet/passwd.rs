//! The Mosquitto password file: a kitchen's MQTT password (32 random bytes, base64url), its
//! `$7$` hash as `mosquitto_passwd` writes it (PBKDF2-SHA512, 101 iterations, 12-byte salt,
//! standard base64 with padding) and the file updated atomically (the kitchen's line replaced
//! or added, a temporary file renamed over the old one, its mode kept).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha512;

/// Mosquitto's iteration count for `$7$` hashes.
pub const ITERATIONS: u32 = 101;
const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

/// Why the password file could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("user {0:?} cannot be in a Mosquitto password file (':' or a line break)")]
    User(String),
}

/// A new MQTT password: 32 random bytes, base64url without padding.
pub fn new_password() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// PBKDF2 (RFC 8018) with HMAC-SHA512, one 64-byte block.
pub fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_BYTES] {
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mac = Hmac::<Sha512>::new_from_slice(password).expect("hmac takes any key length");
    let mut block = mac.clone();
    block.update(salt);
    block.update(&1u32.to_be_bytes());
    let mut u: [u8; HASH_BYTES] = block.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut round = mac.clone();
        round.update(&u);
        u = round.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// `$7$101$<salt>$<hash>` for `password` with `salt`.
pub fn hash_with_salt(password: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hash = pbkdf2_sha512(password.as_bytes(), salt, ITERATIONS);
    format!("$7${ITERATIONS}${}${}", b64.encode(salt), b64.encode(hash))
}

/// `$7$` hash of `password` with a fresh random salt.
pub fn hash(password: &SecretString) -> String {
    let salt: [u8; SALT_BYTES] = rand::random();
    hash_with_salt(password.expose_secret(), &salt)
}

/// Whether `password` matches a `$7$` hash (for tests and checks).
pub fn verify(password: &str, hashed: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = hashed.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(expected)) = (
        iterations.parse::<u32>(),
        b64.decode(salt),
        b64.decode(expected),
    ) else {
        return false;
    };
    let computed = pbkdf2_sha512(password.as_bytes(), &salt, iterations);
    // Constant time: no early exit on the first differing byte.
    computed.len() == expected.len()
        && computed
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Replaces `user`'s line in the password file at `path` (or adds it; creates the file, mode
/// 0600, if missing) with `user:<hash>`: written to a temporary file beside it, flushed, and
/// renamed over it, so Mosquitto never reads half a file. The file's mode is kept.
pub fn set_user(path: &Path, user: &str, hashed: &str) -> Result<(), PasswdError> {
    if user.contains([':', '\n', '\r']) || user.is_empty() {
        return Err(PasswdError::User(user.to_owned()));
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PasswdError::Io { path, source }
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io(path)(error)),
    };
    let line = format!("{user}:{hashed}");
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for existing_line in existing.as_deref().unwrap_or_default().lines() {
        if existing_line.split_once(':').map(|(name, _)| name) == Some(user) {
            if !replaced {
                lines.push(line.clone());
                replaced = true;
            }
        } else {
            lines.push(existing_line.to_owned());
        }
    }
    if !replaced {
        lines.push(line);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let temporary = temporary_beside(path);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|metadata| metadata.permissions().mode() & 0o7777)
                .unwrap_or(0o600);
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            if let Ok(metadata) = std::fs::metadata(path) {
                use std::os::unix::fs::MetadataExt;
                // Keep the owner when allowed (root rewriting mosquitto's file); ignore when not.
                let _ =
                    std::os::unix::fs::fchown(&file, Some(metadata.uid()), Some(metadata.gid()));
            }
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io(path))
}

fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "passwd".into());
    path.with_file_name(format!(".{name}.{:08x}.tmp", rand::random::<u32>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_6070_style_vectors_for_sha512() {
        // PBKDF2-HMAC-SHA512, "password"/"salt", 1 and 2 iterations (widely published vectors).
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&pbkdf2_sha512(b"password", b"salt", 1)),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
        assert_eq!(
            hex(&pbkdf2_sha512(b"password", b"salt", 2)),
            "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53c\
             f76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e"
        );
    }

    #[test]
    fn hashes_verify_and_look_like_mosquitto_passwd() {
        let password = SecretString::from("s3cret");
        let hashed = hash(&password);
        assert!(hashed.starts_with("$7$101$"), "{hashed}");
        let parts: Vec<&str> = hashed.split('$').collect();
        assert_eq!(parts[3].len(), 16, "12 bytes of salt in base64");
        assert_eq!(parts[4].len(), 88, "64 bytes of hash in base64");
        assert!(verify("s3cret", &hashed));
        assert!(!verify("other", &hashed));
        assert_ne!(hash(&password), hashed, "a new salt each time");
    }

    #[test]
    fn the_file_keeps_other_users_and_its_mode() {
        let dir = std::env::temp_dir().join(format!("relay-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("passwd");
        std::fs::write(&path, "relay:$7$old\nk1:$7$one\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("mode");
        }
        set_user(&path, "k1", "$7$new").expect("replace");
        set_user(&path, "k2", "$7$two").expect("add");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "relay:$7$old\nk1:$7$new\nk2:$7$two\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
        }
        assert!(set_user(&path, "a:b", "$7$x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
