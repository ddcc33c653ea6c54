//! Two-person approval of large refunds (`APPROVAL_THRESHOLD`): the list of requests waiting,
//! and a second admin's approval or rejection. See `ledger::approvals`.

use actix_web::{HttpResponse, web};

use super::refunds::{card_refund, respond};
use super::{Staff, State, with_conn};
use crate::auth::Role;
use crate::error::AppError;
use crate::ledger::approvals::{Approval, ApproveRefund, RejectRefund, waiting};
use crate::ledger::refund_requests::Opened;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/approvals", web::get().to(list))
        .route("/api/admin/approvals/{id}/approve", web::post().to(approve))
        .route("/api/admin/approvals/{id}/reject", web::post().to(reject));
}

/// Refund requests waiting for a second admin (and those that expired in the last week),
/// newest first.
#[utoipa::path(
    get,
    path = "/api/admin/approvals",
    operation_id = "approvals",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Requests waiting for approval", body = Vec<Approval>)),
)]
pub(super) async fn list(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Admin)?;
    let currency = state.config.fund.currency;
    let now = chrono::Utc::now().naive_utc();
    let rows = with_conn(&state, move |c| Ok(waiting(c, currency, now)?)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Approves a waiting refund request: an admin other than the one who asked. The refund is
/// then made (a card refund through Stripe) and answered as `POST .../refund` answers; of two
/// approvals at once, one refunds and the other gets 409 `approval_not_pending`.
#[utoipa::path(
    post,
    path = "/api/admin/approvals/{id}/approve",
    operation_id = "approve_refund",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The refund request")),
    responses((status = 200, description = "Approved and refunded", body = crate::ledger::refund::RefundOutcome)),
)]
pub(super) async fn approve(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let opened = state
        .writer
        .submit(ApproveRefund {
            request_id: id.into_inner(),
            approver: staff.email,
            card_refunds: state.payments.is_some(),
        })
        .await?;
    let answer = match opened {
        Opened::Answered(answer) => answer,
        Opened::Card(card) => card_refund(&state, &card).await?,
    };
    Ok(respond(answer))
}

/// Rejects a waiting refund request (its amount is no longer held back; a replay of the
/// original request gets 409 `approval_not_pending` with `state: rejected`).
#[utoipa::path(
    post,
    path = "/api/admin/approvals/{id}/reject",
    operation_id = "reject_refund",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The refund request")),
    responses((status = 200, description = "Rejected")),
)]
pub(super) async fn reject(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let request_id = id.into_inner();
    state
        .writer
        .submit(RejectRefund {
            request_id,
            by: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "refund_request": request_id, "state": "rejected" })))
}
