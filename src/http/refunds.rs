//! Refunds, by an admin: a card gift through Stripe (then recorded as Stripe reports it), an
//! offline gift by recording it (the money goes back outside the system).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::admin::positive_amount;
use super::donations::idempotency_key;
use super::{Staff, State, input, with_conn};
use crate::auth::Role;
use crate::db::models::RefundRequestRow;
use crate::db::schema::{donations, refund_requests};
use crate::error::{AppError, ErrorCode};
use crate::ledger::ops::{Idempotency, StoredResponse};
use crate::ledger::refund_requests::{CardRefund, FailRefund, FinishRefund, OpenRefund, Opened};
use crate::payments::{RefundMade, StripeCallError};

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
    /// The money goes back outside Stripe (a check mailed to the donor): recorded in the
    /// ledger, never asked of Stripe. The way to refund a payment past its method's refund
    /// window (422 `refund_window_passed`). Default false.
    #[serde(default)]
    outside_stripe: bool,
}

/// Refunds a donation: a card gift through Stripe (then recorded as Stripe reports it), an
/// offline gift by recording it (the money goes back outside the system).
///
/// With an `Idempotency-Key`, the same request again gets the same answer and never a second
/// refund (a card refund whose first attempt died is finished, Stripe giving back the refund
/// it made); the key with another request is 409 `idempotency_conflict`. What refunds asked
/// of Stripe but not yet answered hold is not refundable meanwhile (`pending` in the 422).
#[utoipa::path(
    post,
    path = "/api/admin/donations/{id}/refund",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The donation"), super::payments::IdempotencyKey),
    request_body = RefundRequest,
    responses(
        (status = 200, description = "Refunded (or the same request replayed)", body = crate::ledger::refund::RefundOutcome),
        (status = 202, description = "Made by Stripe, finished later (bank debit, Alipay, WeChat Pay): `status` is `pending`; raised is lowered when Stripe says it succeeded", body = crate::ledger::refund::RefundOutcome),
    ),
)]
#[tracing::instrument(skip_all, fields(donation_id = tracing::field::Empty))]
pub(super) async fn refund(
    staff: Staff,
    state: State,
    req: HttpRequest,
    id: web::Path<i64>,
    body: input::JsonObject<RefundRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let key = idempotency_key(&req)?;
    let body = body.into_inner();
    let donation_id = id.into_inner();
    tracing::Span::current().record("donation_id", donation_id);
    let amount_minor = match &body.amount {
        Some(a) => Some(positive_amount(&state, "amount", a)?),
        None => None,
    };
    let reason = input::text("reason", &body.reason, 500)?;
    // The fingerprint is of the request as parsed ("25" and "25.00" are one request); a
    // refund through Stripe keeps the fingerprint it had before `outside_stripe` existed.
    let fingerprint = if body.outside_stripe {
        serde_json::json!([donation_id, amount_minor, reason, "outside_stripe"])
    } else {
        serde_json::json!([donation_id, amount_minor, reason])
    };
    let idempotency = key.map(|k| Idempotency {
        scope_key: format!("refund:{k}"),
        request_hash: hex::encode(Sha256::digest(fingerprint.to_string())),
    });
    let open = || OpenRefund {
        donation_id,
        amount_minor,
        reason: reason.clone(),
        actor: staff.email.clone(),
        idempotency: idempotency.clone(),
        card_refunds: state.payments.is_some(),
        approval_above: state.config.approval_above_minor,
        outside_stripe: body.outside_stripe,
    };
    let opened = match state.writer.submit(open()).await {
        // Held back by requests whose attempt died: learn from Stripe what became of them,
        // then ask once more.
        Err(e) if e.code == ErrorCode::RefundExceedsRemaining && e.extra_has("pending") => {
            if settle_abandoned(&state, donation_id).await? {
                state.writer.submit(open()).await?
            } else {
                return Err(e);
            }
        }
        other => other?,
    };
    let answer = match opened {
        Opened::Answered(answer) => answer,
        Opened::Card(card) => card_refund(&state, &card).await?,
    };
    Ok(respond(answer))
}

/// An open request older than this has no call to Stripe in flight any more (a call gives
/// up after three attempts of at most 20 s, and the request's deadline is shorter still).
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Settles the donation's open card refund requests whose attempt died (the instance
/// stopped, or the admin never retried): one Stripe made (its metadata names the request) is
/// recorded; one Stripe never made is closed, so its amount is no longer held back. Returns
/// whether any was settled.
async fn settle_abandoned(state: &State, donation_id: i64) -> Result<bool, AppError> {
    let Some(stripe) = state.payments.as_ref() else {
        return Ok(false);
    };
    let before = chrono::Utc::now().naive_utc() - ABANDONED_AFTER;
    let (abandoned, intent) = with_conn(state, move |c| {
        let rows: Vec<RefundRequestRow> = refund_requests::table
            .filter(refund_requests::donation_id.eq(donation_id))
            .filter(refund_requests::state.eq("requested"))
            .filter(refund_requests::updated_at.lt(before))
            .select(RefundRequestRow::as_select())
            .load(c)?;
        let intent: Option<String> = donations::table
            .find(donation_id)
            .select(donations::payment_intent_id)
            .first(c)?;
        Ok((rows, intent))
    })
    .await?;
    let Some(intent) = intent.filter(|_| !abandoned.is_empty()) else {
        return Ok(false);
    };
    let made = stripe
        .refunds_of(&intent)
        .await
        .map_err(|e| AppError::new(ErrorCode::PaymentProviderError, e.to_string()))?;
    for row in abandoned {
        match made.iter().find(|(_, request)| *request == Some(row.id)) {
            Some((refund, _)) => {
                let card = CardRefund {
                    request_id: row.id,
                    donation_id,
                    amount_minor: row.amount_minor,
                    payment_intent: intent.clone(),
                    charge: refund.charge.clone(),
                    opened_at: row.updated_at,
                };
                record(state, stripe, &card, refund.clone()).await?;
            }
            None => {
                let e = AppError::new(
                    ErrorCode::PaymentProviderError,
                    "this refund was never made: its attempt stopped before Stripe made it; \
                     ask again with a new Idempotency-Key",
                );
                let answer = StoredResponse {
                    status: e.code.status().as_u16(),
                    body: e.problem().to_string(),
                };
                let request_id = row.id;
                state
                    .writer
                    .submit(FailRefund { request_id, answer })
                    .await?;
                tracing::warn!(request_id, donation_id, "abandoned refund request closed");
            }
        }
    }
    Ok(true)
}

pub(super) fn respond(answer: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    HttpResponse::build(status)
        .content_type(content_type)
        .body(answer.body)
}

/// Asks Stripe for the refund of an open request, then records Stripe's answer. Until the
/// answer is recorded the request stays open: a retry with the same `Idempotency-Key` asks
/// Stripe again with the same key (Stripe answers with the refund it already made).
pub(super) async fn card_refund(
    state: &State,
    card: &CardRefund,
) -> Result<StoredResponse, AppError> {
    let stripe = state.payments.as_ref().ok_or_else(|| {
        AppError::new(
            ErrorCode::PaymentsUnavailable,
            "Stripe is not configured; card refunds are unavailable",
        )
    })?;
    if chrono::Utc::now().naive_utc() - card.opened_at > ABANDONED_AFTER {
        // Resumed long after it was opened: Stripe may have made it and forgotten the key.
        let made = stripe
            .refunds_of(&card.payment_intent)
            .await
            .map_err(|e| AppError::new(ErrorCode::PaymentProviderError, e.to_string()))?;
        if let Some((refund, _)) = made
            .into_iter()
            .find(|(_, request)| *request == Some(card.request_id))
        {
            return record(state, stripe, card, refund).await;
        }
    }
    let key = format!("{}-refund-request-{}", state.instance_key, card.request_id);
    let made = match stripe
        .refund(
            &key,
            &card.payment_intent,
            card.amount_minor,
            card.request_id,
        )
        .await
    {
        Ok(made) => made,
        // A refusal Stripe would repeat for this key: the request is closed with it. Not
        // so a key in use (409), a rate limit (429) or our own credentials refused (401,
        // 403): Stripe did not run the request, so it stays open for a retry.
        Err(StripeCallError::Api { status, message })
            if (400..500).contains(&status) && ![401, 403, 409, 429].contains(&status) =>
        {
            tracing::warn!(status, %message, request = card.request_id, "refund refused");
            let e = AppError::new(
                ErrorCode::PaymentProviderError,
                format!("Stripe did not refund: {message}"),
            );
            let answer = StoredResponse {
                status: e.code.status().as_u16(),
                body: e.problem().to_string(),
            };
            state
                .writer
                .submit(FailRefund {
                    request_id: card.request_id,
                    answer,
                })
                .await?;
            return Err(e);
        }
        Err(e) => {
            tracing::warn!(error = %e, request = card.request_id, "refund not confirmed");
            return Err(AppError::new(
                ErrorCode::PaymentProviderError,
                format!(
                    "Stripe did not confirm the refund ({e}); retry with the same \
                     Idempotency-Key: it is never made twice"
                ),
            ));
        }
    };
    let answer = record(state, stripe, card, made).await?;
    tracing::info!(
        donation_id = card.donation_id,
        request = card.request_id,
        "card refund made"
    );
    Ok(answer)
}

/// Records a refund Stripe made for `card`'s request, with the charge's cumulative total.
async fn record(
    state: &State,
    stripe: &crate::payments::Payments,
    card: &CardRefund,
    made: RefundMade,
) -> Result<StoredResponse, AppError> {
    let charge = made
        .charge
        .or_else(|| card.charge.clone())
        .ok_or_else(|| AppError::internal("Stripe's refund names no charge"))?;
    let (amount_refunded, method_type) = stripe.amount_refunded(&charge).await.map_err(|e| {
        tracing::warn!(error = %e, request = card.request_id, "refund made, total unknown");
        AppError::new(
            ErrorCode::PaymentProviderError,
            format!(
                "Stripe made the refund but did not say the charge's total ({e}); it is \
                 recorded when Stripe's event arrives, or retry with the same Idempotency-Key"
            ),
        )
    })?;
    state
        .writer
        .submit(FinishRefund {
            request_id: card.request_id,
            payment_intent: card.payment_intent.clone(),
            charge,
            amount_refunded,
            stripe_refund_id: made.id,
            status: made.status,
            method_type: method_type.map(str::to_owned),
        })
        .await
}
