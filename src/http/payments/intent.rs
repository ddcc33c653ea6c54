//! A new card donation's PaymentIntent, created and attached by a task of its own. Stripe may
//! answer after the request deadline has dropped the donor's request; the task goes on, so the
//! intent is still attached and its answer stored under the `Idempotency-Key`, and the donor's
//! retry with that key waits for it ([`await_answer`]) instead of being refused. Stripe's own
//! idempotency key is derived from the donation, so a repeated creation is the same intent.

use std::time::Duration;

use diesel::prelude::*;
use tracing::Instrument;

use super::{DonationCreated, State, payments, status_token};
use crate::error::{AppError, ErrorCode};
use crate::ledger::card::{AbandonDonation, AttachIntent};
use crate::ledger::ops::StoredResponse;
use crate::money::{DonationAmount, Money};
use crate::payments::StripeCallError;

/// How often a waiting retry looks for the first request's answer: a primary-key read.
const POLL: Duration = Duration::from_millis(100);

/// The donor's answer when Stripe did not answer, or failed on its side.
const UNREACHABLE: &str =
    "the card processor could not be reached; nothing was charged, please try again";

/// Creates and attaches the PaymentIntent of `donation_id` in a task that outlives the
/// request, and returns its answer (201 with the client secret). When Stripe refuses, or
/// does not answer within [`crate::config::Config::intent_budget`], the donation is abandoned
/// (its reservation and key released: nothing was charged) and the answer is 502:
/// `payment_provider_refused` when Stripe read the request and refused it,
/// `payment_provider_error` otherwise.
pub(super) async fn open(
    state: &State,
    donation_id: i64,
    (amount, fee_covered_minor): (DonationAmount, i64),
    scope_key: Option<String>,
) -> Result<StoredResponse, AppError> {
    let task = create_and_attach(
        state.clone(),
        donation_id,
        (amount, fee_covered_minor),
        scope_key,
    )
    .instrument(tracing::Span::current());
    tokio::spawn(task).await.map_err(AppError::internal)?
}

async fn create_and_attach(
    state: State,
    donation_id: i64,
    (amount, fee_covered_minor): (DonationAmount, i64),
    scope_key: Option<String>,
) -> Result<StoredResponse, AppError> {
    let stripe = payments(&state)?;
    let currency = state.config.fund.currency;
    let key = format!("{}-donation-{donation_id}", state.instance_key);
    let budget = state.config.intent_budget();
    let created = tokio::time::timeout(
        budget,
        stripe.create_intent(&key, donation_id, amount.minor(), currency.code()),
    )
    .await;
    let intent = match created {
        Ok(Ok(intent)) => intent,
        failed => {
            let (code, detail) = match failed {
                // Stripe read the request and refused it: nothing a retry changes. The usual
                // cause is a method in PAYMENT_METHODS the account has not activated, which
                // the operator must hear of.
                Ok(Err(StripeCallError::Api { status, message }))
                    if status < 500 && status != 429 =>
                {
                    tracing::error!(
                        status,
                        %message,
                        methods = ?stripe.methods,
                        "Stripe refused to create a PaymentIntent: check PAYMENT_METHODS \
                         against the payment methods activated in the Stripe Dashboard"
                    );
                    (
                        ErrorCode::PaymentProviderRefused,
                        "the payment processor refused to start this payment (a way to pay \
                         this fund offers may not be switched on with it); nothing was \
                         charged, please give another way or later",
                    )
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "PaymentIntent not created");
                    (ErrorCode::PaymentProviderError, UNREACHABLE)
                }
                _ => {
                    tracing::warn!(?budget, "no PaymentIntent within the budget");
                    (ErrorCode::PaymentProviderError, UNREACHABLE)
                }
            };
            // Nothing was charged (an intent Stripe makes after this was never handed out):
            // remove the pending row so it cannot pass for money.
            state
                .writer
                .submit(AbandonDonation {
                    donation_id,
                    idempotency_key: scope_key,
                })
                .await?;
            return Err(AppError::new(code, detail));
        }
    };
    let body = DonationCreated {
        donation_id,
        client_secret: intent.client_secret,
        publishable_key: stripe.publishable_key.clone(),
        amount: Money::new(amount.minor(), currency),
        fee_covered: Money::new(fee_covered_minor, currency),
        status_token: status_token(&state, donation_id),
    };
    let resp = StoredResponse {
        status: 201,
        body: serde_json::to_string(&body).map_err(AppError::internal)?,
    };
    state
        .writer
        .submit(AttachIntent {
            donation_id,
            payment_intent: intent.id,
            remember: scope_key.map(|k| (k, resp.clone())),
            method_type: crate::domain::payment_methods::sole_type(&stripe.methods)
                .map(str::to_owned),
        })
        .await?;
    Ok(resp)
}

/// Waits until the request holding `scope_key` has its answer stored (`Some`), or its key is
/// freed because its donation was abandoned (`None`: the caller starts afresh). The request
/// deadline bounds the wait; the creating task's budget, or the sweep after a crash, bounds
/// how long the key stays in progress.
pub(super) async fn await_answer(
    state: &State,
    scope_key: &str,
) -> Result<Option<StoredResponse>, AppError> {
    use crate::db::schema::idempotency_keys;
    loop {
        let key = scope_key.to_owned();
        let row: Option<(i32, String)> = crate::http::with_conn(state, move |c| {
            Ok(idempotency_keys::table
                .find(key)
                .select((
                    idempotency_keys::status_code,
                    idempotency_keys::response_body,
                ))
                .first(c)
                .optional()?)
        })
        .await?;
        match row {
            None => return Ok(None),
            Some((0, _)) => tokio::time::sleep(POLL).await,
            Some((status, body)) => {
                return Ok(Some(StoredResponse {
                    status: u16::try_from(status).unwrap_or(201),
                    body,
                }));
            }
        }
    }
}
