//! Card giving: creating a donation with its PaymentIntent, and Stripe's webhooks.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::limits::{DonationAttempt, read_body};
use super::{PUBLIC_JSON_LIMIT, State, input, with_body_limit};
use crate::auth::Email;
use crate::error::{AppError, ErrorCode};
use crate::ledger::card::{CardGift, CreateCardDonation, Created};
use crate::ledger::ops::{Idempotency, StoredResponse};
use crate::money::Money;
use crate::payments::Payments;
use crate::payments::events::classify;
use crate::payments::signature;

mod intent;

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

/// A card gift from the donation page.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DonationRequest {
    /// Between `DONATION_MIN` and `DONATION_MAX`.
    #[schema(value_type = super::openapi::AmountInput)]
    amount: serde_json::Value,
    /// The donor's name as it goes on the receipt (trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    donor_name: String,
    /// Where the receipt goes.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Not shown publicly by name.
    #[serde(default)]
    anonymous: Option<bool>,
    /// Receipt language.
    #[serde(default)]
    #[schema(schema_with = locale_schema)]
    locale: Option<String>,
    /// Add what the card processor keeps, so the whole `amount` reaches the fund (only when
    /// the fund offers it, `FEE_COVER=on`; else 422 `invalid_request`).
    #[serde(default)]
    cover_fee: Option<bool>,
}

/// Receipt languages (`zh` and `zh-cn` are taken as `zh-CN`; blank as `en`).
pub(super) fn locale_schema() -> utoipa::openapi::schema::Schema {
    super::openapi::one_of_or_null(&["en", "zh-CN", "zh-cn", "zh", ""])
}

/// The `Idempotency-Key` header: the same key with the same body replays the first answer;
/// with another body it is 409 `idempotency_conflict`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "a parameter schema only: read by donations::idempotency_key"
)]
pub(super) struct IdempotencyKey {
    /// 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]{1,255}$"
    )]
    key: Option<String>,
}

/// What the page needs to take the card.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct DonationCreated {
    /// The pending donation.
    donation_id: i64,
    /// The PaymentIntent's client secret, for Stripe.js.
    client_secret: String,
    /// Stripe's publishable key.
    publishable_key: String,
    /// The amount charged, as recorded (the fee the donor chose to cover included).
    amount: Money,
    /// The part of `amount` the donor added to cover the processing fee (`0.00`: none).
    fee_covered: Money,
    /// Lets the page ask `GET /api/donations/{id}/status`.
    status_token: Option<String>,
}

/// Creates a pending donation and its PaymentIntent; the page confirms it with Stripe.js.
#[utoipa::path(
    post,
    path = "/api/donations",
    tag = "public",
    params(IdempotencyKey),
    request_body = DonationRequest,
    responses(
        (status = 201, description = "Pending donation and its PaymentIntent (or the same request replayed)", body = DonationCreated),
    ),
)]
#[tracing::instrument(skip_all, fields(donation_id = tracing::field::Empty))]
pub(super) async fn create_donation(
    _attempt: DonationAttempt,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<DonationRequest>,
) -> Result<HttpResponse, AppError> {
    // Refused before anything is written when card giving is not configured.
    payments(&state)?;
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
    let fee_covered_minor = match (body.cover_fee, state.config.fee_cover) {
        (Some(true), Some(fee)) => fee.to_cover(amount.minor()),
        (Some(true), None) => {
            return Err(AppError::invalid_field(
                "cover_fee",
                "this fund does not offer to cover the processing fee",
            ));
        }
        _ => 0,
    };
    let amount = amount.with_fee(fee_covered_minor);
    let gift = CardGift {
        amount,
        amount_minor: amount.minor(),
        fee_covered_minor,
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
    let scope_key = idempotency.as_ref().map(|i| i.scope_key.clone());
    // Twice at most: a retry whose first request's donation was abandoned while it waited
    // (Stripe refused, or never answered) starts afresh with a new donation.
    for _ in 0..2 {
        let created = state
            .writer
            .submit(CreateCardDonation {
                gift: gift.clone(),
                idempotency: idempotency.clone(),
                reservation_ttl: ttl,
            })
            .await?;
        let answer = match created {
            Created::Replayed(r) => Some(r),
            Created::New { donation_id } => {
                tracing::Span::current().record("donation_id", donation_id);
                Some(
                    intent::open(
                        &state,
                        donation_id,
                        (amount, fee_covered_minor),
                        scope_key.clone(),
                    )
                    .await?,
                )
            }
            // The first request with this key died at its deadline while Stripe was slow;
            // its intent is still on its way: answer with it.
            Created::InFlight { donation_id } => {
                tracing::Span::current().record("donation_id", donation_id);
                match &scope_key {
                    Some(k) => intent::await_answer(&state, k).await?,
                    None => return Err(AppError::internal("in flight without a key")),
                }
            }
        };
        if let Some(answer) = answer {
            return Ok(stored(answer));
        }
    }
    Err(AppError::new(
        ErrorCode::IdempotencyConflict,
        "a request with this Idempotency-Key is still in progress; retry shortly",
    ))
}

fn stored(r: StoredResponse) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(r.status)
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(r.body)
}

/// A Stripe event, as far as crowdledger reads it (anything else in it is ignored).
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "a schema only: events are verified on raw bytes, then read leniently"
)]
pub(super) struct StripeEvent {
    /// `evt_...`: each is applied once.
    id: String,
    /// e.g. `payment_intent.succeeded`; types crowdledger does not act on are acknowledged.
    #[schema(rename = "type")]
    kind: String,
    /// Unix seconds.
    created: i64,
    /// `{ "object": { ... } }`
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// `POST /webhooks/stripe`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct WebhookAck {
    /// Always true.
    received: bool,
    /// What became of the event.
    outcome: crate::ledger::card::EventOutcome,
}

/// Verifies the signature on the raw bytes before reading anything, then records the event
/// through the writer; 2xx only after the commit, so a failure makes Stripe retry.
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "stripe",
    params(("Stripe-Signature" = String, Header, description = "`t=...,v1=...`: HMAC-SHA256 of `t.body` under the webhook secret; 300 s tolerance")),
    request_body = StripeEvent,
    responses((status = 200, description = "Committed (or already seen, or ignored)", body = WebhookAck)),
)]
#[tracing::instrument(skip_all, fields(event_id = tracing::field::Empty))]
pub(super) async fn stripe_webhook(
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
    // Another account's or mode's event is decided here, from the event alone: the writer
    // only stores it, as cheaply as a repeated event, and Stripe gets its 2xx.
    let event =
        classify(&stripe.owner, &json).map_err(|e| AppError::new(ErrorCode::InvalidRequest, e))?;
    tracing::Span::current().record("event_id", event.id.as_str());
    let event_type = event.event_type.clone();
    let outcome = state.writer.submit(event.into_command()).await?;
    state.metrics.webhook(&event_type, outcome);
    Ok(HttpResponse::Ok().json(WebhookAck {
        received: true,
        outcome,
    }))
}

/// What the donor's page is told of its donation (one of
/// [`crate::domain::PAYMENT_STATUSES`]), given the donation's status token; 404 for a wrong
/// token, as for a donation that does not exist.
pub(crate) async fn payment_status(
    state: &State,
    id: i64,
    given: &str,
) -> Result<String, AppError> {
    use diesel::prelude::*;

    let valid = status_token(state, id).is_some_and(|expected| {
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
    let (status, processing): (String, Option<chrono::NaiveDateTime>) =
        super::with_conn(state, move |c| {
            use crate::db::schema::donations;
            Ok(donations::table
                .find(id)
                .select((donations::status, donations::processing_since))
                .first(c)?)
        })
        .await?;
    Ok(if status == "pending" && processing.is_some() {
        "processing".to_owned()
    } else {
        status
    })
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatusQuery {
    /// The `status_token` of the creation answer.
    token: String,
}

/// `GET /api/donations/{id}/status`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct DonationStatus {
    /// `pending` until the payment's webhook arrives; `processing` while a bank debit's money
    /// is on its way.
    #[schema(schema_with = crate::api_schema::payment_status)]
    status: String,
}

/// `{status}` of one donation, for the page waiting on its webhook; reveals nothing else.
#[utoipa::path(
    get,
    path = "/api/donations/{id}/status",
    tag = "public",
    params(("id" = i64, Path, description = "The donation"), StatusQuery),
    responses((status = 200, description = "The donation's status", body = DonationStatus)),
)]
pub(super) async fn donation_status(
    state: State,
    id: web::Path<i64>,
    q: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    let status = payment_status(&state, id.into_inner(), &q.into_inner().token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(DonationStatus { status }))
}
