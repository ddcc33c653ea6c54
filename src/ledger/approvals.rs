//! Two-person approval of large refunds. A refund above `APPROVAL_THRESHOLD` is written as a
//! `refund_requests` row in state `pending_approval` (its amount held back like a request
//! asked of Stripe) and nothing reaches Stripe. A second admin approves it ([`ApproveRefund`]:
//! an offline gift is refunded at once, a card refund becomes `requested` and is put to Stripe
//! by the caller, exactly as a refund below the threshold) or rejects it ([`RejectRefund`]).
//! The writer applies one decision at a time, so of two admins approving at once one wins and
//! the other gets 409 `approval_not_pending`: one refund at Stripe. A request not decided
//! within [`APPROVAL_TTL`] expires (its amount is no longer held back). Request, approval and
//! rejection are audit rows naming both admins, written with the money change.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::ops::StoredResponse;
use super::refund::{RecordRefund, refundable_status};
use super::refund_requests::{
    DONE, OpenRefund, Opened, PENDING_APPROVAL, REQUESTED, card_refund, donation,
    refundable_amount, request,
};
use super::{Ctx, Op};
use crate::db::models::{DonationRow, RefundRequestRow};
use crate::db::{DbConn, schema::refund_requests};
use crate::error::{AppError, ErrorCode};
use crate::money::{Currency, Money};

/// How long a request waits for a second admin before it expires.
pub const APPROVAL_TTL: TimeDelta = TimeDelta::days(7);
/// Rejected by a second admin (or withdrawn by the requester).
const REJECTED: &str = "rejected";

/// A refund request as the approvals list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Approval {
    /// The request (`POST /api/admin/approvals/{id}/approve`).
    pub id: i64,
    /// The donation to refund.
    pub donation_id: i64,
    /// The amount asked.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// The admin who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// When it expires unless decided.
    pub expires_at: DateTime<Utc>,
    /// `pending_approval`, or `expired` once past `expires_at`.
    pub state: String,
}

fn expired(row: &RefundRequestRow, now: NaiveDateTime) -> bool {
    now - row.created_at >= APPROVAL_TTL
}

/// The requests waiting for approval, and those that expired in the last week, newest first.
pub fn waiting(
    conn: &mut DbConn,
    currency: Currency,
    now: NaiveDateTime,
) -> QueryResult<Vec<Approval>> {
    let rows: Vec<RefundRequestRow> = refund_requests::table
        .filter(refund_requests::state.eq(PENDING_APPROVAL))
        .filter(refund_requests::created_at.gt(now - APPROVAL_TTL * 2))
        .order(refund_requests::id.desc())
        .limit(500)
        .select(RefundRequestRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Approval {
            state: if expired(&r, now) {
                "expired"
            } else {
                PENDING_APPROVAL
            }
            .to_owned(),
            id: r.id,
            donation_id: r.donation_id,
            amount: Money::new(r.amount_minor, currency),
            reason: r.reason,
            requested_by: r.actor,
            requested_at: r.created_at.and_utc(),
            expires_at: (r.created_at + APPROVAL_TTL).and_utc(),
        })
        .collect())
}

/// Writes a refund above the threshold as waiting for approval; answers 202 with the request.
pub(super) fn ask_approval(
    open: &OpenRefund,
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    amount: i64,
) -> Result<Opened, AppError> {
    let c = cx.st.currency;
    let id = open.insert(cx, amount, PENDING_APPROVAL, None)?;
    // The answer, also to an `Idempotency-Key` replay until the request is decided.
    let answer = StoredResponse {
        status: 202,
        body: serde_json::json!({
            "refund_request": id, "state": PENDING_APPROVAL, "donation_id": d.id,
            "amount": c.format(amount), "expires_at": (cx.now + APPROVAL_TTL).and_utc(),
        })
        .to_string(),
    };
    diesel::update(refund_requests::table.find(id))
        .set((
            refund_requests::status_code.eq(i32::from(answer.status)),
            refund_requests::response_body.eq(&answer.body),
        ))
        .execute(cx.conn()?)?;
    cx.audit(
        &open.actor,
        "refund.approval_requested",
        &serde_json::json!({
            "refund_request": id, "donation_id": d.id, "amount": c.format(amount),
            "reason": open.reason,
        }),
    )?;
    Ok(Opened::Answered(answer))
}

/// The request `id` if it is still waiting, else 409 `approval_not_pending` naming its state.
fn still_waiting(cx: &mut Ctx<'_>, id: i64) -> Result<RefundRequestRow, AppError> {
    let row = request(cx, id)?;
    let state = match row.state.as_str() {
        PENDING_APPROVAL if expired(&row, cx.now) => "expired",
        PENDING_APPROVAL => return Ok(row),
        REQUESTED | DONE => "approved",
        other => other,
    };
    Err(AppError {
        code: ErrorCode::ApprovalNotPending,
        detail: format!("refund request {id} is not waiting for approval: it is {state}"),
        extra: Some(serde_json::json!({ "state": state })),
    })
}

/// A second admin approves a waiting refund request.
#[derive(Debug)]
pub struct ApproveRefund {
    /// The request.
    pub request_id: i64,
    /// The approving admin (not the one who asked).
    pub approver: String,
    /// Stripe is configured, so a card gift can be refunded.
    pub card_refunds: bool,
}

impl Op for ApproveRefund {
    type Output = Opened;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Opened, AppError> {
        let row = still_waiting(cx, self.request_id)?;
        if row.actor == self.approver {
            return Err(AppError::new(
                ErrorCode::ApprovalOwnRequest,
                "a refund above the approval threshold needs a second admin: you asked for it",
            ));
        }
        let d = donation(cx, row.donation_id)?;
        refundable_status(&d)?;
        refundable_amount(cx, &d, Some(row.amount_minor), row.amount_minor)?;
        let c = cx.st.currency;
        cx.audit(
            &self.approver,
            "refund.approved",
            &serde_json::json!({
                "refund_request": row.id, "donation_id": d.id,
                "amount": c.format(row.amount_minor), "requested_by": row.actor,
            }),
        )?;
        let now = cx.now;
        let decided = |state: &str, answer: Option<&StoredResponse>| {
            (
                refund_requests::state.eq(state.to_owned()),
                refund_requests::approved_by.eq(Some(self.approver.clone())),
                refund_requests::status_code.eq(answer.map(|a| i32::from(a.status))),
                refund_requests::response_body.eq(answer.map(|a| a.body.clone())),
                refund_requests::updated_at.eq(now),
            )
        };
        if !row.outside_stripe {
            super::refund::within_refund_window(cx, &d)?;
        }
        if d.method != "card" || row.outside_stripe {
            let outcome = RecordRefund {
                donation_id: d.id,
                amount_minor: Some(row.amount_minor),
                reason: row.reason.clone(),
                actor: row.actor.clone(),
            }
            .apply(cx)?;
            let answer = StoredResponse {
                status: 200,
                body: serde_json::to_string(&outcome).map_err(AppError::internal)?,
            };
            let set = decided(DONE, Some(&answer));
            diesel::update(refund_requests::table.find(row.id))
                .set(set)
                .execute(cx.conn()?)?;
            return Ok(Opened::Answered(answer));
        }
        if !self.card_refunds {
            return Err(AppError::new(
                ErrorCode::PaymentsUnavailable,
                "Stripe is not configured; card refunds are unavailable",
            ));
        }
        let set = decided(REQUESTED, None);
        diesel::update(refund_requests::table.find(row.id))
            .set(set)
            .execute(cx.conn()?)?;
        let row = request(cx, row.id)?;
        Ok(Opened::Card(card_refund(&row, &d)?))
    }
}

/// An admin rejects a waiting refund request (the requester may withdraw their own).
#[derive(Debug)]
pub struct RejectRefund {
    /// The request.
    pub request_id: i64,
    /// Who rejects.
    pub by: String,
}

impl Op for RejectRefund {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let row = still_waiting(cx, self.request_id)?;
        let refused = AppError {
            code: ErrorCode::ApprovalNotPending,
            detail: format!("refund request {} was rejected", row.id),
            extra: Some(serde_json::json!({ "state": REJECTED })),
        };
        diesel::update(refund_requests::table.find(row.id))
            .set((
                refund_requests::state.eq(REJECTED),
                refund_requests::status_code.eq(i32::from(refused.code.status().as_u16())),
                refund_requests::response_body.eq(refused.problem().to_string()),
                refund_requests::updated_at.eq(cx.now),
            ))
            .execute(cx.conn()?)?;
        cx.audit(
            &self.by,
            "refund.rejected",
            &serde_json::json!({
                "refund_request": row.id, "donation_id": row.donation_id,
                "amount": cx.st.currency.format(row.amount_minor), "requested_by": row.actor,
            }),
        )
    }
}
