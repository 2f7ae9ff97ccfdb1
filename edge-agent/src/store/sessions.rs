//! Batch sessions: a batch a cook started on a batch item and, once completed, the units it
//! gave each order.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::record::{Allocation, Session};

/// Records a started batch session.
pub fn insert_session(tx: &Transaction<'_>, session: &Session) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO batch_sessions (session_id, station_id, item_id, item_name, quantity,
                                     device, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            session.session_id,
            session.station_id,
            session.item_id,
            session.item_name,
            session.quantity,
            session.device,
            session.started_at_ms
        ],
    )?;
    Ok(())
}

/// Completes a session: its units go to `allocations`' orders.
pub fn complete_session(
    tx: &Transaction<'_>,
    session: &Session,
    completed_at_ms: i64,
    allocations: &[Allocation],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE batch_sessions SET completed_at = ?2, allocations = ?3 WHERE session_id = ?1",
        params![
            session.session_id,
            completed_at_ms,
            serde_json::to_string(allocations).unwrap_or_default()
        ],
    )?;
    for allocation in allocations {
        tx.execute(
            "INSERT INTO order_done (order_id, station_id, item_id, units) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (order_id, station_id, item_id) DO UPDATE SET units = units + excluded.units",
            params![
                allocation.order_id,
                session.station_id,
                session.item_id,
                allocation.units
            ],
        )?;
    }
    Ok(())
}

const SESSION_COLUMNS: &str = "session_id, station_id, item_id, item_name, quantity, device,
                               started_at, completed_at, allocations";

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let allocations: Option<String> = row.get(8)?;
    Ok(Session {
        session_id: row.get(0)?,
        station_id: row.get(1)?,
        item_id: row.get(2)?,
        item_name: row.get(3)?,
        quantity: row.get(4)?,
        device: row.get(5)?,
        started_at_ms: row.get(6)?,
        completed_at_ms: row.get(7)?,
        allocations: allocations
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
    })
}

pub fn session(connection: &Connection, session_id: &str) -> Result<Option<Session>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {SESSION_COLUMNS} FROM batch_sessions WHERE session_id = ?1"),
            [session_id],
            session_from_row,
        )
        .optional()?)
}

/// Sessions started and not completed, oldest first.
pub fn open_sessions(connection: &Connection) -> Result<Vec<Session>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM batch_sessions WHERE completed_at IS NULL
         ORDER BY started_at, session_id"
    ))?;
    let sessions = statement
        .query_map([], session_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(sessions)
}

impl Store {
    /// A batch session by id.
    pub fn session(&self, session_id: &str) -> Result<Option<Session>, StoreError> {
        session(&self.connection, session_id)
    }
}
