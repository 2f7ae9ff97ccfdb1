//! The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802 / 7677), computed here so
//! that `ALTER ROLE ... PASSWORD` carries the verifier and never the password itself (what psql's
//! `\password` does): the plaintext cannot end up in the server log or `pg_stat_activity`.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
pub const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with one output block: SCRAM's `Hi(password, salt, iterations)`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = hmac(password, &[salt, &1u32.to_be_bytes()]);
    let mut result = block;
    for _ in 1..iterations {
        block = hmac(password, &[&block]);
        for (r, b) in result.iter_mut().zip(block) {
            *r ^= b;
        }
    }
    result
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as in `pg_authid.rolpassword`.
///
/// PostgreSQL first applies SASLprep to the password; for ASCII passwords (the only ones the
/// relay accepts, see `read_password_file`) that leaves the bytes as they are.
pub fn verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// A verifier with a fresh random 16-byte salt (as PostgreSQL makes them).
pub fn new_verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    verifier(password, &salt, ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_postgresql_stores() {
        // `ALTER ROLE r PASSWORD 'correct horse battery staple'` on PostgreSQL 15, then
        // `SELECT rolpassword FROM pg_authid`.
        let stored = "SCRAM-SHA-256$4096:ujQxczmV2cCRXy9bJ/pB4Q==$\
                      hEba199ARjE1Q3LjqMYp6ApHNjkwZ+NZbuJYBfr1dfc=:\
                      AdrHq56I8KtO2bmsiGgolMApDVhQVV1/8pxHo+iQolI=";
        let salt = STANDARD.decode("ujQxczmV2cCRXy9bJ/pB4Q==").expect("base64");
        assert_eq!(
            verifier("correct horse battery staple", &salt, 4096),
            stored
        );
    }

    #[test]
    fn fresh_verifiers_differ_by_salt() {
        let (a, b) = (new_verifier("secret"), new_verifier("secret"));
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert!(!a.contains('\''), "{a}");
    }
}
