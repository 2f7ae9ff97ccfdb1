//! Provisioning a kitchen: its `kitchen.kitchens` row, the login role its box uses (a member of
//! `kitchen_agent`), the `kitchen.agent_roles` row tying the two, the role's limits
//! (`kitchen.limit_box_role`: connections, timeouts) and optionally the role's password. One
//! transaction; running it again changes nothing (but the password, if given).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgConnection, PgPool};

use super::{AGENT_ROLE, KitchenError, scram};

/// What `add_kitchen` did; `Display` prints one line per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub kitchen_id: String,
    pub role: String,
    pub kitchen_created: bool,
    pub role_created: bool,
    /// The role existed and was made a member of `kitchen_agent` now.
    pub role_granted: bool,
    pub role_mapped: bool,
    pub password_set: bool,
    /// The role's connection limit and session defaults, read back after
    /// `kitchen.limit_box_role` set them.
    pub connection_limit: i32,
    pub settings: Vec<String>,
}

impl fmt::Display for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = |yes: bool, did: &'static str, had: &'static str| if yes { did } else { had };
        writeln!(
            f,
            "kitchen {:?}: {}",
            self.kitchen_id,
            done(self.kitchen_created, "created", "already there")
        )?;
        let role = if self.role_created {
            format!("created (LOGIN, member of {AGENT_ROLE})")
        } else if self.role_granted {
            format!("existed; made a member of {AGENT_ROLE}")
        } else {
            format!("already there (member of {AGENT_ROLE})")
        };
        writeln!(f, "role {:?}: {role}", self.role)?;
        writeln!(
            f,
            "role {:?} is kitchen {:?}'s box: {}",
            self.role,
            self.kitchen_id,
            done(self.role_mapped, "mapped", "already mapped")
        )?;
        writeln!(
            f,
            "role {:?}: at most {} connections; {}",
            self.role,
            self.connection_limit,
            self.settings.join(", ")
        )?;
        write!(
            f,
            "password: {}",
            done(
                self.password_set,
                "set (SCRAM-SHA-256 verifier)",
                "unchanged (no --password-file)"
            )
        )
    }
}

fn check_names(kitchen_id: &str, role: &str) -> Result<(), KitchenError> {
    let bad_kitchen = |reason| {
        Err(KitchenError::InvalidKitchenId {
            kitchen_id: kitchen_id.to_owned(),
            reason,
        })
    };
    if kitchen_id.is_empty() {
        return bad_kitchen("it is empty");
    }
    if kitchen_id.trim() != kitchen_id {
        // The agent trims KITCHEN_ID; an id with spaces around it could never match.
        return bad_kitchen("it starts or ends with whitespace");
    }
    if kitchen_id.chars().any(char::is_control) {
        return bad_kitchen("it holds a control character");
    }
    let bad_role = |reason: &str| {
        Err(KitchenError::InvalidRole {
            role: role.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if role.is_empty() || role.len() > 63 {
        return bad_role("a role name has 1 to 63 bytes");
    }
    if role.chars().any(char::is_control) {
        return bad_role("it holds a control character");
    }
    if role.starts_with("pg_") {
        return bad_role("names starting with pg_ are reserved");
    }
    if role == AGENT_ROLE {
        return bad_role("that is the group role of all kitchen boxes");
    }
    Ok(())
}

/// `role` as a quoted identifier, by PostgreSQL's own `quote_ident`.
async fn quoted(connection: &mut PgConnection, role: &str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT quote_ident($1)")
        .bind(role)
        .fetch_one(connection)
        .await
}

/// Provisions kitchen `kitchen_id` with the login role `role` for its box: creates the kitchen
/// and the role where missing (`CREATE ROLE ... LOGIN IN ROLE kitchen_agent`), maps the role to
/// the kitchen, and sets the role's password when one is given (as a SCRAM verifier: the
/// password itself is never sent). An existing role is accepted only if it cannot escape
/// row-level security (no SUPERUSER, no BYPASSRLS, not the relay's own role) and is not
/// another kitchen's box. Needs a connection whose role may create roles (CREATEROLE).
pub async fn add_kitchen(
    pool: &PgPool,
    kitchen_id: &str,
    role: &str,
    password: Option<&SecretString>,
) -> Result<Provisioned, KitchenError> {
    check_names(kitchen_id, role)?;
    let mut tx = pool.begin().await?;
    let ident = quoted(&mut tx, role).await?;
    let kitchen_created = sqlx::query(
        "INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1) ON CONFLICT (kitchen_id) DO NOTHING",
    )
    .bind(kitchen_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;

    let existing = sqlx::query_as::<_, (bool, bool, bool, bool)>(
        "SELECT rolsuper, rolbypassrls, rolcanlogin, rolname = current_user
         FROM pg_catalog.pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?;
    let unsafe_role = |reason| {
        Err(KitchenError::UnsafeRole {
            role: role.to_owned(),
            reason,
        })
    };
    let (mut role_created, mut role_granted) = (false, false);
    match existing {
        None => {
            sqlx::query(&format!("CREATE ROLE {ident} LOGIN IN ROLE {AGENT_ROLE}"))
                .execute(&mut *tx)
                .await?;
            role_created = true;
        }
        Some((superuser, bypass_rls, can_login, is_relay)) => {
            if superuser || bypass_rls {
                return unsafe_role("it is a superuser or has BYPASSRLS");
            }
            if is_relay {
                return unsafe_role("it is the relay's own role");
            }
            if !can_login {
                return unsafe_role("it cannot log in (NOLOGIN)");
            }
            let member: bool =
                sqlx::query_scalar("SELECT pg_has_role($1::name, $2::name, 'MEMBER')")
                    .bind(role)
                    .bind(AGENT_ROLE)
                    .fetch_one(&mut *tx)
                    .await?;
            if !member {
                sqlx::query(&format!("GRANT {AGENT_ROLE} TO {ident}"))
                    .execute(&mut *tx)
                    .await?;
                role_granted = true;
            }
        }
    }
    // Privileges are granted to kitchen_agent; the box must have them without SET ROLE.
    let inherits: bool = sqlx::query_scalar("SELECT pg_has_role($1::name, $2::name, 'USAGE')")
        .bind(role)
        .bind(AGENT_ROLE)
        .fetch_one(&mut *tx)
        .await?;
    if !inherits {
        return unsafe_role("it does not inherit kitchen_agent's privileges (NOINHERIT)");
    }

    let role_mapped = sqlx::query(
        "INSERT INTO kitchen.agent_roles (role_name, kitchen_id) VALUES ($1, $2)
         ON CONFLICT (role_name) DO NOTHING",
    )
    .bind(role)
    .bind(kitchen_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !role_mapped {
        let mapped_to: String =
            sqlx::query_scalar("SELECT kitchen_id FROM kitchen.agent_roles WHERE role_name = $1")
                .bind(role)
                .fetch_one(&mut *tx)
                .await?;
        if mapped_to != kitchen_id {
            return Err(KitchenError::RoleTaken {
                role: role.to_owned(),
                kitchen_id: mapped_to,
            });
        }
    }

    // The box's limits (connections, timeouts), in the migration's one function.
    sqlx::query("SELECT kitchen.limit_box_role($1)")
        .bind(role)
        .execute(&mut *tx)
        .await?;
    let (connection_limit, settings): (i32, Vec<String>) = sqlx::query_as(
        "SELECT r.rolconnlimit, coalesce(s.setconfig, '{}')
         FROM pg_catalog.pg_roles r
         LEFT JOIN pg_catalog.pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
         WHERE r.rolname = $1",
    )
    .bind(role)
    .fetch_one(&mut *tx)
    .await?;

    let password_set = match password {
        Some(password) => {
            // Base64, digits, `$` and `:` only: safe inside a string literal.
            let verifier = scram::new_verifier(password.expose_secret());
            sqlx::query(&format!("ALTER ROLE {ident} PASSWORD '{verifier}'"))
                .execute(&mut *tx)
                .await?;
            true
        }
        None => false,
    };
    tx.commit().await?;
    Ok(Provisioned {
        kitchen_id: kitchen_id.to_owned(),
        role: role.to_owned(),
        kitchen_created,
        role_created,
        role_granted,
        role_mapped,
        password_set,
        connection_limit,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_sent() {
        let check = |kitchen: &str, role: &str, expected: Option<&str>| {
            let result = check_names(kitchen, role).err().map(|e| e.to_string());
            assert_eq!(result.as_deref(), expected, "{kitchen:?} {role:?}");
        };
        check("bk-01", "kitchen_bk_01", None);
        check("bk-01", "Kitchen \"BK\" 01", None);
        check("", "r", Some("invalid kitchen id \"\": it is empty"));
        check(
            " bk",
            "r",
            Some("invalid kitchen id \" bk\": it starts or ends with whitespace"),
        );
        check(
            "bk\u{7}",
            "r",
            Some("invalid kitchen id \"bk\\u{7}\": it holds a control character"),
        );
        check(
            "bk",
            "",
            Some("invalid role name \"\": a role name has 1 to 63 bytes"),
        );
        check(
            "bk",
            &"r".repeat(64),
            Some(&format!(
                "invalid role name {:?}: a role name has 1 to 63 bytes",
                "r".repeat(64)
            )),
        );
        check(
            "bk",
            "pg_monitor",
            Some("invalid role name \"pg_monitor\": names starting with pg_ are reserved"),
        );
        check(
            "bk",
            "kitchen_agent",
            Some(
                "invalid role name \"kitchen_agent\": that is the group role of all kitchen boxes",
            ),
        );
    }
}
