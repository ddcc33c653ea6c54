//! Refunds, by an admin: a card gift through Stripe (then recorded as Stripe reports it), an
//! offline gift by recording it (the money goes back outside the system).

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use serde::Deserialize;

use super::admin::positive_amount;
use super::{Staff, State, input, with_conn};
use crate::auth::Role;
use crate::db::models::DonationRow;
use crate::db::schema::donations;
use crate::error::{AppError, ErrorCode};
use crate::ledger::card::ApplyStripeEvent;
use crate::ledger::refund::RecordRefund;
use crate::money::Money;
use crate::payments::events::Fact;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    use super::{JSON_LIMIT, with_body_limit};
    use actix_web::http::Method;
    cfg.service(
        with_body_limit("/api/admin/donations/{id}/refund", Method::POST, JSON_LIMIT).to(refund),
    );
}

/// A refund.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundRequest {
    /// How much; all that is left when absent. More than is left: 422 `refund_exceeds_remaining`.
    #[schema(value_type = Option<super::openapi::AmountInput>)]
    amount: Option<serde_json::Value>,
    /// Why (kept in the ledger and the audit log; trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    reason: String,
}

/// Refunds a donation: a card gift through Stripe (then recorded as Stripe reports it), an
/// offline gift by recording it (the money goes back outside the system).
#[utoipa::path(
    post,
    path = "/api/admin/donations/{id}/refund",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The donation")),
    request_body = RefundRequest,
    responses((status = 200, description = "Refunded", body = crate::ledger::refund::RefundOutcome)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn refund(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: input::JsonObject<RefundRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let body = body.into_inner();
    let donation_id = id.into_inner();
    let amount_minor = match &body.amount {
        Some(a) => Some(positive_amount(&state, "amount", a)?),
        None => None,
    };
    let reason = input::text("reason", &body.reason, 500)?;
    let d = with_conn(&state, move |c| {
        donations::table
            .find(donation_id)
            .select(DonationRow::as_select())
            .first(c)
            .optional()
            .map_err(AppError::from)
    })
    .await?
    .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no donation {donation_id}")))?;
    if d.method != "card" {
        let outcome = state
            .writer
            .submit(RecordRefund {
                donation_id,
                amount_minor,
                reason,
                actor: staff.email,
            })
            .await?;
        return Ok(HttpResponse::Ok().json(outcome));
    }
    card_refund(&state, donation_id, amount_minor, &reason, &staff.email).await
}

async fn card_refund(
    state: &State,
    donation_id: i64,
    amount_minor: Option<i64>,
    reason: &str,
    actor: &str,
) -> Result<HttpResponse, AppError> {
    let stripe = state.payments.as_ref().ok_or_else(|| {
        AppError::new(
            ErrorCode::PaymentsUnavailable,
            "Stripe is not configured; card refunds are unavailable",
        )
    })?;
    // One card refund at a time: the check of what is refundable and the call to Stripe
    // must not interleave with another refund of the same money.
    let _guard = state.refund_lock.lock().await;
    let d = with_conn(state, move |c| {
        Ok(donations::table
            .find(donation_id)
            .select(DonationRow::as_select())
            .first(c)?)
    })
    .await?;
    let c = state.config.fund.currency;
    let refundable = d.amount_minor - d.refunded_minor - d.disputed_minor;
    let amount = amount_minor.unwrap_or(refundable);
    if d.status != "succeeded" {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!(
                "donation {donation_id} is {}; only succeeded donations can be refunded",
                d.status
            ),
        ));
    }
    if amount <= 0 || amount > refundable {
        return Err(AppError {
            code: ErrorCode::RefundExceedsRemaining,
            detail: format!("at most {} can still be refunded", c.format(refundable)),
            extra: Some(serde_json::json!({ "refundable": c.format(refundable) })),
        });
    }
    let pi = d.payment_intent_id.clone().unwrap_or_default();
    let total = d.refunded_minor + amount;
    let key = format!("{}-refund-{donation_id}-{total}", state.instance_key);
    stripe.refund(&key, &pi, amount).await.map_err(|e| {
        tracing::warn!(error = %e, donation_id, "refund refused");
        AppError::new(
            ErrorCode::PaymentProviderError,
            format!("Stripe did not refund: {e}"),
        )
    })?;
    state
        .writer
        .submit(ApplyStripeEvent {
            event_id: format!("local:refund:{donation_id}:{total}"),
            event_type: "local.refund".into(),
            created: chrono::Utc::now().timestamp(),
            fact: Fact::ChargeRefunded {
                payment_intent: Some(pi),
                charge: d.charge_id.clone().unwrap_or_default(),
                amount_refunded: total,
            },
            keep_unknown: false,
        })
        .await?;
    tracing::info!(donation_id, actor, reason, "card refund made");
    let raised = state
        .writer
        .snapshot()
        .get()
        .map(|s| s.view.raised)
        .ok_or_else(|| AppError::unavailable("no fund snapshot yet"))?;
    Ok(
        HttpResponse::Ok().json(crate::ledger::refund::RefundOutcome {
            donation_id,
            refunded: Money::new(amount, c),
            refunded_total: Money::new(total, c),
            refundable: Money::new(refundable - amount, c),
            raised,
        }),
    )
}
