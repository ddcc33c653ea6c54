//! Disbursements above `APPROVAL_THRESHOLD`: a second admin approves (the payment reaches the
//! ledger then) or rejects (it never does); the one who recorded it cannot approve it, and
//! one not decided within [`crate::ledger::approvals::APPROVAL_TTL`] expires.

use diesel::prelude::*;

use super::{DisbursementView, PENDING, Row, carry_out, check_balance, find, row};
use crate::db::schema::disbursements;
use crate::error::{AppError, ErrorCode};
use crate::ledger::{Ctx, Op};

/// A disbursement waiting for approval, or 409 `approval_not_pending` (decided or expired).
fn pending(cx: &mut Ctx<'_>, id: i64) -> Result<Row, AppError> {
    let row = row(cx, id)?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no disbursement {id}")))?;
    let expired = cx.now - row.created_at >= crate::ledger::approvals::APPROVAL_TTL;
    if row.state != PENDING || expired {
        let state = if row.state == PENDING {
            "expired"
        } else {
            row.state.as_str()
        };
        let mut e = AppError::new(
            ErrorCode::ApprovalNotPending,
            format!("disbursement {id} is not waiting for approval ({state})"),
        );
        e.extra = Some(serde_json::json!({ "state": state }));
        return Err(e);
    }
    Ok(row)
}

/// Records the decision on `row` by `by` (its audit row names who asked) and answers it.
fn decided(
    cx: &mut Ctx<'_>,
    row: &Row,
    by: &str,
    approved: bool,
) -> Result<DisbursementView, AppError> {
    let now = cx.now;
    let target = disbursements::table.find(row.id);
    let conn = cx.conn()?;
    if approved {
        diesel::update(target)
            .set((
                disbursements::approved_by.eq(by),
                disbursements::decided_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::update(target)
            .set((
                disbursements::state.eq("rejected"),
                disbursements::decided_at.eq(now),
            ))
            .execute(conn)?;
    }
    let action = if approved {
        "disbursement.approved"
    } else {
        "disbursement.rejected"
    };
    cx.audit(
        by,
        action,
        &serde_json::json!({ "id": row.id, "requested_by": row.created_by }),
    )?;
    let c = cx.st.currency;
    find(cx.conn()?, row.id, c)?.ok_or_else(|| AppError::internal("disbursement vanished"))
}

/// A second admin approves a disbursement above the threshold: it reaches the ledger now.
#[derive(Debug)]
pub struct ApproveDisbursement {
    /// The disbursement.
    pub id: i64,
    /// The approving admin.
    pub approver: String,
}

impl Op for ApproveDisbursement {
    type Output = DisbursementView;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<DisbursementView, AppError> {
        let row = pending(cx, self.id)?;
        if row.created_by == self.approver {
            return Err(AppError::new(
                ErrorCode::ApprovalOwnRequest,
                "a second admin must approve the payment you recorded",
            ));
        }
        check_balance(cx, row.amount_minor)?;
        carry_out(cx, &row, &self.approver)?;
        decided(cx, &row, &self.approver, true)
    }
}

/// An admin rejects a disbursement waiting for approval: it never reaches the ledger.
#[derive(Debug)]
pub struct RejectDisbursement {
    /// The disbursement.
    pub id: i64,
    /// The admin.
    pub by: String,
}

impl Op for RejectDisbursement {
    type Output = DisbursementView;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<DisbursementView, AppError> {
        let row = pending(cx, self.id)?;
        decided(cx, &row, &self.by, false)
    }
}
