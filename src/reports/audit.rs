//! The audit trail as staff read it: a page of rows (`GET /api/admin/audit`) and the whole
//! filtered trail as CSV (`GET /api/reports/audit.csv`), both oldest first by id, so `after`
//! (the last id seen) pages through a trail that keeps growing without skipping or repeating.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::PAGE;
use super::csv_out::{ChunkedCsv, text_cell};
use super::donations::iso;
use crate::db::DbConn;
use crate::db::schema::audit_log;
use crate::error::AppError;

/// Most rows in one page.
pub const MAX_LIMIT: i64 = 500;

/// What to read of the trail (all optional; dates inclusive, UTC).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only rows by this actor (a staff email, or `stripe`, `system`...), exactly.
    pub actor: Option<String>,
    /// Only this action (e.g. `donation.refund`, `refund.approved`, `report.export`), exactly.
    pub action: Option<String>,
    /// First day.
    pub from: Option<NaiveDate>,
    /// Last day.
    pub to: Option<NaiveDate>,
    /// Rows after this id (the `next_after` of the page before).
    pub after: Option<i64>,
    /// Rows per page (default 100, at most 500; the CSV has no limit).
    pub limit: Option<i64>,
    /// CSV only: `1`, `true` or `yes` starts the file with a UTF-8 byte-order mark.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub excel: Option<String>,
}

/// One audit row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct AuditRow {
    id: i64,
    at: NaiveDateTime,
    actor: String,
    action: String,
    detail: String,
}

/// One audit row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its id (rows are append-only, ids only grow).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Details, as recorded (JSON text).
    pub detail: String,
}

/// A page of the trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The rows, oldest first.
    pub rows: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

fn rows_after(
    conn: &mut DbConn,
    q: &AuditQuery,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table
        .filter(audit_log::id.gt(after))
        .order(audit_log::id.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .into_boxed();
    if let Some(actor) = &q.actor {
        query = query.filter(audit_log::actor.eq(actor.clone()));
    }
    if let Some(action) = &q.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(from) = q.from {
        query = query.filter(audit_log::at.ge(from.and_time(chrono::NaiveTime::MIN)));
    }
    if let Some(to) = q.to.and_then(|t| t.succ_opt()) {
        query = query.filter(audit_log::at.lt(to.and_time(chrono::NaiveTime::MIN)));
    }
    Ok(query
        .load::<AuditRow>(conn)?
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: r.at.and_utc(),
            actor: r.actor,
            action: r.action,
            detail: r.detail,
        })
        .collect())
}

/// One page of the trail.
pub fn page(conn: &mut DbConn, q: &AuditQuery) -> Result<AuditPage, AppError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    // One more than asked says whether another page follows.
    let mut rows = rows_after(conn, q, q.after.unwrap_or(0), limit + 1)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_after = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(AuditPage { rows, next_after })
}

/// Streams the filtered trail as CSV: `id,at,actor,action,detail`.
pub fn export<F: FnMut(Vec<u8>) -> bool>(
    conn: &mut DbConn,
    q: &AuditQuery,
    out: &mut ChunkedCsv<F>,
) -> Result<(), AppError> {
    if !out.row(["id", "at", "actor", "action", "detail"]) {
        return Ok(());
    }
    let mut after = q.after.unwrap_or(0);
    loop {
        let rows = rows_after(conn, q, after, PAGE)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for r in rows {
            let ok = out.row([
                r.id.to_string(),
                iso(r.at.naive_utc()),
                text_cell(&r.actor).into_owned(),
                text_cell(&r.action).into_owned(),
                text_cell(&r.detail).into_owned(),
            ]);
            if !ok {
                return Ok(());
            }
        }
    }
    out.flush();
    Ok(())
}
