//! Card giving: creating a donation with its PaymentIntent, and Stripe's webhooks.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::limits::{DonationAttempt, read_body};
use super::{PUBLIC_JSON_LIMIT, State, input, with_body_limit};
use crate::auth::Email;
use crate::error::{AppError, ErrorCode};
use crate::ledger::card::{
    AbandonDonation, ApplyStripeEvent, AttachIntent, CardGift, CreateCardDonation, Created,
};
use crate::ledger::ops::{Idempotency, StoredResponse};
use crate::money::Money;
use crate::payments::Payments;
use crate::payments::events::parse_event;
use crate::payments::signature;

/// Largest webhook body accepted.
pub const WEBHOOK_LIMIT: usize = 512 * 1024;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    cfg.service(
        with_body_limit("/api/donations", Method::POST, PUBLIC_JSON_LIMIT).to(create_donation),
    )
    .route("/api/donations/{id}/status", web::get().to(donation_status))
    // The raw body is read by `read_body` with `WEBHOOK_LIMIT`.
    .route("/webhooks/stripe", web::post().to(stripe_webhook));
}

fn payments(state: &State) -> Result<&Payments, AppError> {
    state.payments.as_ref().ok_or_else(|| {
        AppError::new(
            ErrorCode::PaymentsUnavailable,
            "card donations are not available right now; a check or wire is still welcome",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DonationRequest {
    amount: serde_json::Value,
    donor_name: String,
    email: String,
    #[serde(default)]
    anonymous: Option<bool>,
    #[serde(default)]
    locale: Option<String>,
}

#[tracing::instrument(skip_all, fields(donation_id = tracing::field::Empty))]
async fn create_donation(
    _attempt: DonationAttempt,
    state: State,
    req: HttpRequest,
    body: web::Json<DonationRequest>,
) -> Result<HttpResponse, AppError> {
    let stripe = payments(&state)?;
    let body = body.into_inner();
    let currency = state.config.fund.currency;
    let amount = input::amount(
        "amount",
        &body.amount,
        currency,
        state.config.donation_bounds,
    )?;
    let email = Email::parse(&body.email)
        .ok_or_else(|| AppError::invalid_field("email", "email is not a valid address"))?;
    let gift = CardGift {
        amount,
        amount_minor: amount.minor(),
        donor_name: input::text("donor_name", &body.donor_name, 200)?,
        email: email.as_str().to_owned(),
        anonymous: body.anonymous.unwrap_or(false),
        locale: input::locale(body.locale.as_deref())?,
    };
    let idempotency = super::donations::idempotency_key(&req)?.map(|k| Idempotency {
        scope_key: format!("donation:{k}"),
        request_hash: hex::encode(Sha256::digest(
            serde_json::to_vec(&gift).unwrap_or_default(),
        )),
    });
    let ttl = chrono::Duration::from_std(state.config.reservation_ttl)
        .unwrap_or(chrono::Duration::minutes(30));
    let created = state
        .writer
        .submit(CreateCardDonation {
            gift,
            idempotency: idempotency.clone(),
            reservation_ttl: ttl,
        })
        .await?;
    let donation_id = match created {
        Created::Replayed(r) => return Ok(stored(r)),
        Created::New { donation_id } => donation_id,
    };
    tracing::Span::current().record("donation_id", donation_id);
    let key = format!("{}-donation-{donation_id}", state.instance_key);
    let intent = match stripe
        .create_intent(&key, donation_id, amount.minor(), currency.code())
        .await
    {
        Ok(intent) => intent,
        Err(e) => {
            tracing::warn!(error = %e, "PaymentIntent not created");
            // Nothing was charged: remove the pending row so it cannot pass for money.
            state
                .writer
                .submit(AbandonDonation {
                    donation_id,
                    idempotency_key: idempotency.map(|i| i.scope_key),
                })
                .await?;
            return Err(AppError::new(
                ErrorCode::PaymentProviderError,
                "the card processor could not be reached; nothing was charged, please try again",
            ));
        }
    };
    let body = serde_json::json!({
        "donation_id": donation_id,
        "client_secret": intent.client_secret,
        "publishable_key": stripe.publishable_key,
        "amount": Money::new(amount.minor(), currency),
        "status_token": status_token(&state, donation_id),
    });
    let resp = StoredResponse {
        status: 201,
        body: body.to_string(),
    };
    state
        .writer
        .submit(AttachIntent {
            donation_id,
            payment_intent: intent.id,
            remember: idempotency.map(|i| (i.scope_key, resp.clone())),
        })
        .await?;
    Ok(stored(resp))
}

fn stored(r: StoredResponse) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(r.status)
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(r.body)
}

/// Verifies the signature on the raw bytes before reading anything, then records the event
/// through the writer; 2xx only after the commit, so a failure makes Stripe retry.
#[tracing::instrument(skip_all, fields(event_id = tracing::field::Empty))]
async fn stripe_webhook(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(&req, payload, WEBHOOK_LIMIT).await?;
    let stripe = payments(&state)?;
    let header = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        header,
        &body,
        &stripe.webhook_secrets,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| AppError::new(ErrorCode::BadSignature, e.to_string()))?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        AppError::new(
            ErrorCode::MalformedJson,
            format!("the event is not JSON: {e}"),
        )
    })?;
    let event = parse_event(&json).map_err(|e| AppError::new(ErrorCode::InvalidRequest, e))?;
    tracing::Span::current().record("event_id", event.id.as_str());
    let outcome = state
        .writer
        .submit(ApplyStripeEvent {
            event_id: event.id,
            event_type: event.event_type,
            created: event.created,
            fact: event.fact,
            keep_unknown: true,
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true, "outcome": outcome })))
}

/// A token that lets the donor's page ask for its donation's status and nothing else:
/// HMAC-SHA256 of the donation id under the JWT secret, with its own label.
fn status_token(state: &State, donation_id: i64) -> Option<String> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.jwt_secret.bytes()).ok()?;
    mac.update(b"donation-status:");
    mac.update(donation_id.to_string().as_bytes());
    Some(hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct StatusQuery {
    token: String,
}

/// `{status}` of one donation, for the page waiting on its webhook; reveals nothing else.
async fn donation_status(
    state: State,
    id: web::Path<i64>,
    q: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    use diesel::prelude::*;

    let id = id.into_inner();
    let given = q.into_inner().token;
    let valid = status_token(&state, id).is_some_and(|expected| {
        // Constant time over equal-length hex strings.
        expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !valid {
        return Err(AppError::new(ErrorCode::NotFound, "no such donation"));
    }
    let status: String = super::with_conn(&state, move |c| {
        use crate::db::schema::donations;
        Ok(donations::table
            .find(id)
            .select(donations::status)
            .first(c)?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "status": status })))
}
