//! Money out: treasurers record payments to counsel (and other costs of the case), admins void
//! them; each is a ledger entry (see `ledger::disbursements`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::donations::idempotency_key;
use super::{Staff, State, input, with_conn};
use crate::auth::Role;
use crate::error::AppError;
use crate::ledger::disbursements::{
    ApproveDisbursement, DisbursementInput, DisbursementView, RecordDisbursement,
    RejectDisbursement, VoidDisbursement, list as list_all,
};
use crate::ledger::ops::Idempotency;
use crate::money::{AmountBounds, Currency};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/disbursements", web::get().to(list))
        .route("/api/disbursements", web::post().to(record))
        .route("/api/disbursements/{id}/void", web::post().to(void))
        .route("/api/disbursements/{id}/approve", web::post().to(approve))
        .route("/api/disbursements/{id}/reject", web::post().to(reject))
        .route("/api/reports/disbursements.csv", web::get().to(csv));
}

/// A payment out of the fund.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DisbursementRequest {
    /// Positive, at most what the fund holds.
    #[schema(value_type = super::openapi::AmountInput)]
    amount: serde_json::Value,
    /// Must be the fund's currency when sent.
    currency: Option<String>,
    /// Who was paid: shown on the public ledger.
    #[schema(min_length = 1, max_length = 200)]
    payee: String,
    /// The legal-fee period it pays for.
    period_id: Option<i64>,
    /// When it was paid (at most tomorrow).
    #[schema(value_type = chrono::NaiveDate)]
    paid_on: String,
    /// Check number, wire or invoice reference (internal).
    #[schema(max_length = 200)]
    reference: Option<String>,
    /// Internal note.
    #[schema(max_length = 1000)]
    memo: Option<String>,
    /// What the public ledger says of it (e.g. "Counsel's fees, August hearing").
    #[schema(max_length = 500)]
    public_memo: Option<String>,
}

impl DisbursementRequest {
    fn parse(self, currency: Currency) -> Result<DisbursementInput, AppError> {
        if let Some(c) = self.currency.as_deref()
            && !c.trim().eq_ignore_ascii_case(currency.code())
        {
            return Err(AppError::invalid_field(
                "currency",
                format!("the fund's currency is {}", currency.code()),
            ));
        }
        let bounds = AmountBounds {
            min_minor: 1,
            max_minor: i64::MAX / 4,
        };
        let amount = input::amount("amount", &self.amount, currency, bounds)?;
        let paid_on = input::date("paid_on", &self.paid_on)?;
        if paid_on > chrono::Utc::now().date_naive() + chrono::Days::new(1) {
            return Err(AppError::invalid_field(
                "paid_on",
                "paid_on is in the future",
            ));
        }
        if self.period_id.is_some_and(|p| p < 1) {
            return Err(AppError::invalid_field("period_id", "no such period"));
        }
        Ok(DisbursementInput {
            amount_minor: amount.minor(),
            payee: input::text("payee", &self.payee, 200)?,
            period_id: self.period_id,
            paid_on,
            reference: input::optional_text("reference", self.reference.as_deref(), 200)?
                .unwrap_or_default(),
            memo: input::optional_text("memo", self.memo.as_deref(), 1000)?.unwrap_or_default(),
            public_memo: input::optional_text("public_memo", self.public_memo.as_deref(), 500)?
                .unwrap_or_default(),
        })
    }
}

/// Records a payment out of the fund: a hash-chained `disbursement` entry that lowers the
/// balance and a period's balance, never raised (intake and the target are unaffected). Needs a
/// recent password or code; honours `Idempotency-Key`. Above `APPROVAL_THRESHOLD` the answer is
/// 202 with `state: pending_approval`: nothing reaches the ledger until a second admin
/// approves (`POST /api/disbursements/{id}/approve`).
#[utoipa::path(
    post,
    path = "/api/disbursements",
    operation_id = "record_disbursement",
    tag = "treasurer",
    security(("bearer" = [])),
    params(super::payments::IdempotencyKey),
    request_body = DisbursementRequest,
    responses(
        (status = 201, description = "Recorded", body = DisbursementView),
        (status = 202, description = "Waiting for a second admin", body = DisbursementView),
    ),
)]
pub(super) async fn record(
    staff: Staff,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<DisbursementRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Treasurer)?.require_recent()?;
    let key = idempotency_key(&req)?;
    let input = body.into_inner().parse(state.config.fund.currency)?;
    let idempotency = key.map(|k| Idempotency {
        scope_key: format!("disbursement:{k}"),
        request_hash: hex::encode(Sha256::digest(
            serde_json::to_vec(&input).unwrap_or_default(),
        )),
    });
    let resp = state
        .writer
        .submit(RecordDisbursement {
            input,
            actor: staff.email,
            idempotency,
            approval_above_minor: state.config.approval_above_minor,
        })
        .await?;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::CREATED);
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(resp.body))
}

/// Every disbursement, newest first, voided ones included.
#[utoipa::path(
    get,
    path = "/api/disbursements",
    operation_id = "list_disbursements",
    tag = "treasurer",
    security(("bearer" = [])),
    responses((status = 200, description = "Disbursements", body = Vec<DisbursementView>)),
)]
pub(super) async fn list(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let currency = state.config.fund.currency;
    let rows = with_conn(&state, move |c| list_all(c, currency)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Every disbursement as CSV, oldest first (voided ones with their void's time and entry);
/// the export is recorded in the audit trail.
#[utoipa::path(
    get,
    path = "/api/reports/disbursements.csv",
    operation_id = "disbursements_csv",
    tag = "treasurer",
    security(("bearer" = [])),
    responses((status = 200, description = "RFC 4180 CSV, UTF-8", content_type = "text/csv", body = String)),
)]
pub(super) async fn csv(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Treasurer)?;
    let currency = state.config.fund.currency;
    let body = with_conn(&state, move |c| {
        crate::reports::disbursements::csv(c, currency)
    })
    .await?;
    super::reports::audit(&state, staff.email, "disbursements", &Default::default()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"disbursements.csv\"",
        ))
        .body(body))
}

/// Why a disbursement is voided.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VoidRequest {
    /// Internal.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// Voids a disbursement with a reversing entry (the original stays in the ledger); a void
/// of a void is 409 `already_voided`. Admins, with a recent password or code.
#[utoipa::path(
    post,
    path = "/api/disbursements/{id}/void",
    operation_id = "void_disbursement",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The disbursement")),
    request_body = VoidRequest,
    responses((status = 200, description = "Voided", body = DisbursementView)),
)]
pub(super) async fn void(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: input::JsonObject<VoidRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let reason = input::text("reason", &body.into_inner().reason, 500)?;
    let voided = state
        .writer
        .submit(VoidDisbursement {
            id: id.into_inner(),
            reason,
            actor: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok().json(voided))
}

/// A second admin approves a disbursement waiting for approval: it reaches the ledger now.
/// The admin who recorded it cannot (403 `approval_own_request`); one decided or expired is
/// 409 `approval_not_pending`.
#[utoipa::path(
    post,
    path = "/api/disbursements/{id}/approve",
    operation_id = "approve_disbursement",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The disbursement")),
    responses((status = 200, description = "Approved and recorded", body = DisbursementView)),
)]
pub(super) async fn approve(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let done = state
        .writer
        .submit(ApproveDisbursement {
            id: id.into_inner(),
            approver: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Rejects a disbursement waiting for approval: it never reaches the ledger.
#[utoipa::path(
    post,
    path = "/api/disbursements/{id}/reject",
    operation_id = "reject_disbursement",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The disbursement")),
    responses((status = 200, description = "Rejected", body = DisbursementView)),
)]
pub(super) async fn reject(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let done = state
        .writer
        .submit(RejectDisbursement {
            id: id.into_inner(),
            by: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok().json(done))
}
