//! Claiming, completing and counting outbox rows. Several instances may drain one outbox:
//! a claim pushes `next_attempt_at` forward (a lease) and writes the claimer's token, inside a
//! transaction that skips rows another instance holds (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite's write lock). A claim holds a batch, sent one row at a time: before
//! each send the sender renews that row's lease under its token (`renew`), and marks it sent
//! or failed under its token too, so a row whose lease ran out while a slow server took the
//! rows before it is sent by whoever took it next, and only by them.
//!
//! A row gives up (`failed_at`) only when the mail server refused it permanently (5xx) on
//! its `MAX_ATTEMPTS`th attempt or later. Anything else (no connection, a timeout, a 4xx) is
//! retried for as long as it lasts, at the capped backoff interval: an outage of hours delays
//! mail and parks none of it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConn;
use crate::db::models::OutboxRow;
use crate::db::schema::outbox;
use crate::error::AppError;

/// Attempts after which a permanent refusal makes a row `failed` until an admin retries it.
pub const MAX_ATTEMPTS: i32 = 12;

/// Claims up to `limit` rows that are due, for `lease`, under `token` (unique per claim).
pub fn claim(
    conn: &mut DbConn,
    now: NaiveDateTime,
    limit: i64,
    lease: chrono::Duration,
    token: &str,
) -> Result<Vec<OutboxRow>, AppError> {
    let until = now + lease;
    match conn {
        DbConn::Pg(c) => Ok(diesel::sql_query(
            "UPDATE outbox SET next_attempt_at = $1, claim_token = $4 WHERE id IN (\
               SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $2 AND failed_at IS NULL \
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
        )
        .bind::<diesel::sql_types::Timestamp, _>(until)
        .bind::<diesel::sql_types::Timestamp, _>(now)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .bind::<diesel::sql_types::Text, _>(token)
        .load::<OutboxRow>(c)?),
        DbConn::Sqlite(c) => c
            .immediate_transaction(|c| {
                let rows: Vec<OutboxRow> = outbox::table
                    .filter(outbox::sent_at.is_null())
                    .filter(outbox::next_attempt_at.le(now))
                    .filter(outbox::failed_at.is_null())
                    .order(outbox::id.asc())
                    .limit(limit)
                    .select(OutboxRow::as_select())
                    .load(c)?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                    .set((
                        outbox::next_attempt_at.eq(until),
                        outbox::claim_token.eq(token),
                    ))
                    .execute(c)?;
                Ok::<_, diesel::result::Error>(rows)
            })
            .map_err(AppError::from),
    }
}

/// Row `id` while it is unsent and still under `token`'s claim: what renewing, sending and
/// failing a row may change (another sender's claim, or a row already sent, is left alone).
#[diesel::dsl::auto_type(no_type_alias)]
fn under_claim<'a>(id: i64, token: &'a str) -> _ {
    outbox::table
        .find(id)
        .filter(outbox::claim_token.eq(token))
        .filter(outbox::sent_at.is_null())
}

/// Extends the lease of row `id` to `until` just before it is sent. False when the row is no
/// longer under `token`'s claim: its lease ran out while the rows before it were sent and
/// another sender took it (that sender sends it), or it was sent meanwhile.
pub fn renew(
    conn: &mut DbConn,
    id: i64,
    token: &str,
    until: NaiveDateTime,
) -> Result<bool, AppError> {
    let n = diesel::update(under_claim(id, token))
        .set(outbox::next_attempt_at.eq(until))
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives back the rows of `token`'s claim that were not sent (the mailer is stopping), so
/// the next start sends them at once instead of after the lease.
pub fn release(conn: &mut DbConn, token: &str, now: NaiveDateTime) -> Result<usize, AppError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::claim_token.eq(token))
            .filter(outbox::sent_at.is_null())
            .filter(outbox::next_attempt_at.gt(now)),
    )
    .set(outbox::next_attempt_at.eq(now))
    .execute(conn)?)
}

/// Records that the server accepted the message; false if the row was no longer under
/// `token`'s claim (the lease was shorter than the send: see `MAIL_LEASE`).
pub fn mark_sent(
    conn: &mut DbConn,
    id: i64,
    token: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let n = diesel::update(under_claim(id, token))
        .set((
            outbox::sent_at.eq(Some(now)),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// A failed attempt, as `mark_failed` records it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong (kept, up to 500 characters).
    pub error: String,
    /// The mail server refused the message for good (5xx), or it cannot be composed; anything
    /// else (no connection, a timeout, a 4xx) is transient.
    pub permanent: bool,
    /// The row's attempts before this one.
    pub attempts: i32,
    /// When to try again.
    pub retry_at: NaiveDateTime,
}

impl Failure {
    /// Whether this failure ends the row's retries: a permanent one on the `MAX_ATTEMPTS`th
    /// attempt or later.
    pub fn gives_up(&self) -> bool {
        self.permanent && self.attempts.saturating_add(1) >= MAX_ATTEMPTS
    }
}

/// Records a failed attempt under `token`'s claim and when to try again. A permanent failure
/// on the `MAX_ATTEMPTS`th attempt or later gives the row up; a transient one never does.
pub fn mark_failed(
    conn: &mut DbConn,
    id: i64,
    token: &str,
    failure: &Failure,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let error: String = failure.error.chars().take(500).collect();
    let gives_up = failure.gives_up();
    let n = diesel::update(under_claim(id, token))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(Some(error)),
            outbox::next_attempt_at.eq(failure.retry_at),
            outbox::failed_at.eq(gives_up.then_some(now)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Exponential backoff with jitter: `base * 2^attempts`, capped at `max` (ten minutes by
/// default), times a random factor between 0.5 and 1.5. Past the cap a row is retried at
/// about that interval for as long as the failure lasts.
pub fn backoff(
    base: std::time::Duration,
    max: std::time::Duration,
    attempts: i32,
) -> chrono::Duration {
    let base_ms = i64::try_from(base.as_millis()).unwrap_or(2_000).max(1);
    let max_ms = i64::try_from(max.as_millis()).unwrap_or(600_000).max(1);
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(0);
    let delay = base_ms.saturating_mul(1_i64 << exp).min(max_ms);
    let jittered = delay / 2 + rand::random_range(0..=delay);
    chrono::Duration::milliseconds(jittered)
}

/// Outbox totals for the admin page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OutboxCounts {
    /// Waiting to be sent (including those being retried).
    pub queued: i64,
    /// Refused for good by the mail server (twelfth attempt or later); an admin may retry them.
    pub failed: i64,
    /// Accepted by the mail server.
    pub sent: i64,
    /// Rows that have failed at least once and are still being retried, however long it takes.
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
        .filter(outbox::failed_at.is_not_null())
        .count()
        .get_result(conn)?;
    let queued = unsent
        .filter(outbox::failed_at.is_null())
        .count()
        .get_result(conn)?;
    let retrying = unsent
        .filter(outbox::failed_at.is_null())
        .filter(outbox::attempts.gt(0))
        .count()
        .get_result(conn)?;
    Ok(OutboxCounts {
        queued,
        failed,
        sent,
        retrying,
    })
}

/// Makes every failed row due again now, with a fresh schedule; returns how many.
pub fn retry_failed(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, AppError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::failed_at.is_not_null()),
    )
    .set((
        outbox::attempts.eq(0),
        outbox::next_attempt_at.eq(now),
        outbox::failed_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = std::time::Duration::from_secs(2);
        let max = std::time::Duration::from_secs(600);
        for _ in 0..100 {
            let first = backoff(base, max, 0).num_milliseconds();
            assert!((1_000..=3_000).contains(&first), "{first}");
            let late = backoff(base, max, 30).num_milliseconds();
            assert!((300_000..=900_000).contains(&late), "{late}");
            // A shorter cap holds too (MAIL_RETRY_MAX).
            let capped = backoff(base, std::time::Duration::from_secs(60), 30);
            assert!((30_000..=90_000).contains(&capped.num_milliseconds()));
        }
    }
}
