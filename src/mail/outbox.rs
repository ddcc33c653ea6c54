//! Claiming, completing and counting outbox rows. Several instances may drain one outbox:
//! a claim pushes `next_attempt_at` forward (a lease) inside a transaction that skips rows
//! another instance holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConn;
use crate::db::models::OutboxRow;
use crate::db::schema::outbox;
use crate::error::AppError;

/// Attempts after which a row is `failed` until an admin retries it.
pub const MAX_ATTEMPTS: i32 = 12;
/// How long a claim holds a row before another sender may take it.
pub const LEASE_SECS: i64 = 120;

/// Claims up to `limit` rows that are due.
pub fn claim(
    conn: &mut DbConn,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxRow>, AppError> {
    let lease = now + chrono::Duration::seconds(LEASE_SECS);
    match conn {
        DbConn::Pg(c) => Ok(diesel::sql_query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE id IN (\
               SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $2 AND attempts < $3 \
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *",
        )
        .bind::<diesel::sql_types::Timestamp, _>(lease)
        .bind::<diesel::sql_types::Timestamp, _>(now)
        .bind::<diesel::sql_types::Integer, _>(MAX_ATTEMPTS)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load::<OutboxRow>(c)?),
        DbConn::Sqlite(c) => c.immediate_transaction(|c| {
            let rows: Vec<OutboxRow> = outbox::table
                .filter(outbox::sent_at.is_null())
                .filter(outbox::next_attempt_at.le(now))
                .filter(outbox::attempts.lt(MAX_ATTEMPTS))
                .order(outbox::id.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
                .load(c)?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                .set(outbox::next_attempt_at.eq(lease))
                .execute(c)?;
            Ok::<_, diesel::result::Error>(rows)
        })
        .map_err(AppError::from),
    }
}

/// Records that the server accepted the message.
pub fn mark_sent(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::sent_at.eq(Some(now)),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub fn mark_failed(
    conn: &mut DbConn,
    id: i64,
    error: &str,
    retry_at: NaiveDateTime,
) -> Result<(), AppError> {
    let error: String = error.chars().take(500).collect();
    diesel::update(outbox::table.find(id))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(Some(error)),
            outbox::next_attempt_at.eq(retry_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Exponential backoff with jitter: `base * 2^attempts` (capped at ten minutes), times a
/// random factor between 0.5 and 1.5.
pub fn backoff(base: std::time::Duration, attempts: i32) -> chrono::Duration {
    let base_ms = i64::try_from(base.as_millis()).unwrap_or(2_000).max(1);
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(0);
    let delay = base_ms.saturating_mul(1_i64 << exp).min(600_000);
    let jittered = delay / 2 + rand::random_range(0..=delay);
    chrono::Duration::milliseconds(jittered)
}

/// Outbox totals for the admin page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OutboxCounts {
    /// Waiting to be sent (including those being retried).
    pub queued: i64,
    /// Given up after the maximum attempts; an admin may retry them.
    pub failed: i64,
    /// Accepted by the mail server.
    pub sent: i64,
    /// Rows that have failed at least once and are still being retried.
    pub retrying: i64,
}

/// Counts the outbox by state.
pub fn counts(conn: &mut DbConn) -> Result<OutboxCounts, AppError> {
    let sent = outbox::table
        .filter(outbox::sent_at.is_not_null())
        .count()
        .get_result(conn)?;
    let unsent = outbox::table.filter(outbox::sent_at.is_null());
    let failed = unsent
        .filter(outbox::attempts.ge(MAX_ATTEMPTS))
        .count()
        .get_result(conn)?;
    let queued = unsent
        .filter(outbox::attempts.lt(MAX_ATTEMPTS))
        .count()
        .get_result(conn)?;
    let retrying = unsent
        .filter(outbox::attempts.gt(0))
        .filter(outbox::attempts.lt(MAX_ATTEMPTS))
        .count()
        .get_result(conn)?;
    Ok(OutboxCounts {
        queued,
        failed,
        sent,
        retrying,
    })
}

/// Makes every failed row due again now; returns how many.
pub fn retry_failed(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, AppError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::attempts.ge(MAX_ATTEMPTS)),
    )
    .set((outbox::attempts.eq(0), outbox::next_attempt_at.eq(now)))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = std::time::Duration::from_secs(2);
        for _ in 0..100 {
            let first = backoff(base, 0).num_milliseconds();
            assert!((1_000..=3_000).contains(&first), "{first}");
            let late = backoff(base, 30).num_milliseconds();
            assert!((300_000..=900_000).contains(&late), "{late}");
        }
    }
}
