//! Naming the kitchen a transaction works for, which the row-level security policies read.

use sqlx::PgConnection;

/// The setting the `kitchen` schema's policies read the current kitchen from
/// (`kitchen.current_kitchen()`).
pub const TENANT_SETTING: &str = "kitchen.id";

/// Names `kitchen_id` as the tenant for the rest of the current transaction only
/// (`set_config(..., true)`): a kitchen box's role sees and writes its kitchen's rows only
/// inside a transaction that names it. Outside a transaction the setting would not last
/// beyond the statement.
pub async fn set_tenant(
    connection: &mut PgConnection,
    kitchen_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(TENANT_SETTING)
        .bind(kitchen_id)
        .execute(connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    async fn tenant(connection: &mut PgConnection) -> Option<String> {
        sqlx::query_scalar::<_, Option<String>>("SELECT current_setting($1, true)")
            .bind(TENANT_SETTING)
            .fetch_one(connection)
            .await
            .expect("current_setting")
            // Once defined in a session, an unset placeholder setting reads as ''.
            .filter(|value| !value.is_empty())
    }

    /// Against the PostgreSQL the integration tests use; changes nothing in it.
    #[tokio::test]
    async fn the_tenant_lasts_for_the_transaction_only() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut connection = PgConnection::connect(&url).await.expect("connect");
        assert_eq!(tenant(&mut connection).await, None);
        for kitchen_id in ["bk-01", "it's \"quoted\""] {
            let mut tx = connection.begin().await.expect("begin");
            set_tenant(&mut tx, kitchen_id).await.expect("set_tenant");
            assert_eq!(tenant(&mut tx).await.as_deref(), Some(kitchen_id));
            tx.commit().await.expect("commit");
            assert_eq!(tenant(&mut connection).await, None);
        }
    }
}
