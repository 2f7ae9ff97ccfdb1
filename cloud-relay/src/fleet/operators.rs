//! Operators of the fleet page: `operator add` makes a token (32 random bytes, `op_<hex>`),
//! printed once and stored only as its SHA-256; a request is an operator's when its token's
//! hash is in `fleet.operators`.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Why an operator could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("invalid operator name {0:?}: 1 to 64 printable characters, no spaces at the ends")]
    InvalidName(String),
    #[error("operator {0:?} already exists (remove it first to give it a new token)")]
    Exists(String),
    #[error("no operator {0:?}")]
    Unknown(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// An operator as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new token: `op_` and 64 hex digits.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut token = String::with_capacity(67);
    token.push_str("op_");
    for byte in bytes {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn check_name(name: &str) -> Result<(), OperatorError> {
    let fine = !name.is_empty()
        && name.chars().count() <= 64
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if fine {
        Ok(())
    } else {
        Err(OperatorError::InvalidName(name.to_owned()))
    }
}

/// Adds operator `name`; returns the token, which is not kept anywhere.
pub async fn add(pool: &PgPool, name: &str) -> Result<String, OperatorError> {
    check_name(name)?;
    let token = new_token();
    let inserted = sqlx::query(
        "INSERT INTO fleet.operators (name, token_sha256) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&token_hash(&token)[..])
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(OperatorError::Exists(name.to_owned()));
    }
    Ok(token)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Operator>, OperatorError> {
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT name, created_at FROM fleet.operators ORDER BY name")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(name, created_at)| Operator { name, created_at })
        .collect())
}

pub async fn remove(pool: &PgPool, name: &str) -> Result<(), OperatorError> {
    let removed = sqlx::query("DELETE FROM fleet.operators WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(OperatorError::Unknown(name.to_owned()));
    }
    Ok(())
}

/// The operator whose token this is, if any.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<String>, sqlx::Error> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT name FROM fleet.operators WHERE token_sha256 = $1")
        .bind(&token_hash(token)[..])
        .fetch_optional(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_op_and_64_hex_digits_and_differ() {
        let token = new_token();
        assert!(token.starts_with("op_"));
        assert_eq!(token.len(), 67);
        assert!(token[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, new_token());
        assert!(check_name("alice").is_ok());
        assert!(check_name(" alice").is_err());
        assert!(check_name("").is_err());
    }
}
