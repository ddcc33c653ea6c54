//! Refunds asked of the admin route, made once. Each is a `refund_requests` row the writer
//! writes before Stripe is called, so:
//! - the check of what is left to refund counts the other requests still open, and runs in
//!   the writer (serialised with every money change, and across instances by the fund row's
//!   lock each batch takes), not under an in-process lock;
//! - Stripe's idempotency key is derived from the row's id, so every retry of the request, on
//!   any instance, asks Stripe for the same refund;
//! - a repeated `Idempotency-Key` with the same request gets the stored answer (or resumes a
//!   request whose earlier attempt never recorded Stripe's answer); with another request, 409.
//!
//! Stripe's answer is recorded as a cumulative `charge.refunded` fact, the same path as the
//! webhook's, so whichever arrives first records the money and the other changes nothing.

use diesel::prelude::*;

use super::card::ApplyStripeEvent;
use super::ops::{Idempotency, StoredResponse};
use super::refund::{RecordRefund, RefundOutcome, refundable_status};
use super::{Ctx, Op};
use crate::db::models::{DonationRow, NewRefundRequest, RefundRequestRow};
use crate::db::schema::{donations, refund_requests};
use crate::error::{AppError, ErrorCode};
use crate::money::Money;

/// A request waiting for Stripe's answer.
pub(super) const REQUESTED: &str = "requested";
/// Made by Stripe, not finished (a method whose refunds settle later): held back until
/// Stripe says `succeeded` (then `done`) or `failed`.
pub(super) const PENDING: &str = "pending";
/// Answered: refunded (`done`) or refused by Stripe (`failed`); the answer is stored.
pub(super) const DONE: &str = "done";
pub(super) const FAILED: &str = "failed";
/// Above `APPROVAL_THRESHOLD`: waiting for a second admin (see [`super::approvals`]).
pub(super) const PENDING_APPROVAL: &str = "pending_approval";

/// Opens a refund asked of the admin route: answers a repeated request from its row, refunds
/// an offline gift at once, or writes the row of a card refund to be asked of Stripe.
#[derive(Debug)]
pub struct OpenRefund {
    /// Donation to refund.
    pub donation_id: i64,
    /// Amount, minor units; `None` refunds all that is left.
    pub amount_minor: Option<i64>,
    /// Why (ledger memo, audit log).
    pub reason: String,
    /// Who asks.
    pub actor: String,
    /// The request's `Idempotency-Key` and fingerprint, if it sent one.
    pub idempotency: Option<Idempotency>,
    /// Stripe is configured, so a card gift can be refunded.
    pub card_refunds: bool,
    /// Refunds above this (minor units) wait for a second admin's approval.
    pub approval_above: Option<i64>,
    /// The money goes back outside Stripe (a check): recorded, never asked of Stripe.
    pub outside_stripe: bool,
}

/// What opening a refund decided.
#[derive(Debug)]
pub enum Opened {
    /// The answer is known: an offline gift refunded now, or the stored answer of a request
    /// made before with this `Idempotency-Key` and body.
    Answered(StoredResponse),
    /// A card refund to ask of Stripe: new, or one whose earlier attempt died before its
    /// answer was recorded (Stripe is then asked again with the same key).
    Card(CardRefund),
}

/// A card refund to ask of Stripe.
#[derive(Debug, Clone)]
pub struct CardRefund {
    /// The `refund_requests` row; Stripe's idempotency key is derived from it.
    pub request_id: i64,
    /// Donation refunded.
    pub donation_id: i64,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// The payment refunded.
    pub payment_intent: String,
    /// Its charge, if known.
    pub charge: Option<String>,
    /// When the request was put to Stripe (made, or approved; Stripe forgets idempotency keys after a day: a
    /// request resumed long after is looked for among Stripe's refunds before it is asked).
    pub opened_at: chrono::NaiveDateTime,
}

pub(super) fn donation(cx: &mut Ctx<'_>, id: i64) -> Result<DonationRow, AppError> {
    donations::table
        .find(id)
        .select(DonationRow::as_select())
        .get_result(cx.donations_table()?)
        .optional()?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no donation {id}")))
}

pub(super) fn request(cx: &mut Ctx<'_>, id: i64) -> Result<RefundRequestRow, AppError> {
    refund_requests::table
        .find(id)
        .select(RefundRequestRow::as_select())
        .get_result(cx.conn()?)
        .optional()?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no refund request {id}")))
}

/// What the donation's open requests hold back: those asked of Stripe whose answer is not
/// recorded, and those waiting for approval (until they expire).
fn held_back(cx: &mut Ctx<'_>, donation_id: i64) -> Result<i64, AppError> {
    let waiting_since = cx.now - super::approvals::APPROVAL_TTL;
    let amounts: Vec<i64> = refund_requests::table
        .filter(refund_requests::donation_id.eq(donation_id))
        .filter(
            refund_requests::state
                .eq_any([REQUESTED, PENDING])
                .or(refund_requests::state
                    .eq(PENDING_APPROVAL)
                    .and(refund_requests::created_at.gt(waiting_since))),
        )
        .select(refund_requests::amount_minor)
        .load(cx.conn()?)?;
    Ok(amounts.iter().sum())
}

/// The amount a refund of `asked` (all that is left when `None`) takes from `d`, or
/// `refund_exceeds_remaining`. `own` is what the request being decided holds back itself.
pub(super) fn refundable_amount(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    asked: Option<i64>,
    own: i64,
) -> Result<i64, AppError> {
    let held = held_back(cx, d.id)? - own;
    let refundable = d.amount_minor - d.refunded_minor - d.disputed_minor - held;
    let amount = asked.unwrap_or(refundable);
    if amount <= 0 || amount > refundable {
        let c = cx.st.currency;
        let mut extra = serde_json::json!({ "refundable": c.format(refundable.max(0)) });
        let mut detail = format!(
            "at most {} can still be refunded",
            c.format(refundable.max(0))
        );
        if held > 0 {
            extra["pending"] = c.format(held).into();
            detail.push_str(&format!(
                " ({} is in refunds asked of Stripe or waiting for approval)",
                c.format(held)
            ));
        }
        return Err(AppError {
            code: ErrorCode::RefundExceedsRemaining,
            detail,
            extra: Some(extra),
        });
    }
    Ok(amount)
}

/// The stored answer of an answered request.
fn stored(row: &RefundRequestRow) -> StoredResponse {
    StoredResponse {
        status: row
            .status_code
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200),
        body: row.response_body.clone().unwrap_or_default(),
    }
}

pub(super) fn card_refund(row: &RefundRequestRow, d: &DonationRow) -> Result<CardRefund, AppError> {
    Ok(CardRefund {
        request_id: row.id,
        donation_id: d.id,
        amount_minor: row.amount_minor,
        payment_intent: d
            .payment_intent_id
            .clone()
            .ok_or_else(|| AppError::internal("a succeeded card gift has no PaymentIntent"))?,
        charge: d.charge_id.clone(),
        // When it was last put to Stripe: made, or approved.
        opened_at: row.updated_at,
    })
}

impl OpenRefund {
    pub(super) fn insert(
        &self,
        cx: &mut Ctx<'_>,
        amount_minor: i64,
        state: &str,
        answer: Option<&StoredResponse>,
    ) -> Result<i64, AppError> {
        let now = cx.now;
        Ok(diesel::insert_into(refund_requests::table)
            .values(&NewRefundRequest {
                idempotency_key: self.idempotency.as_ref().map(|i| i.scope_key.as_str()),
                request_hash: self
                    .idempotency
                    .as_ref()
                    .map_or("", |i| i.request_hash.as_str()),
                donation_id: self.donation_id,
                amount_minor,
                actor: &self.actor,
                reason: &self.reason,
                state,
                stripe_refund_id: None,
                outside_stripe: self.outside_stripe,
                status_code: answer.map(|a| i32::from(a.status)),
                response_body: answer.map(|a| a.body.as_str()),
                created_at: now,
                updated_at: now,
            })
            .returning(refund_requests::id)
            .get_result(cx.conn()?)?)
    }
}

impl Op for OpenRefund {
    type Output = Opened;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Opened, AppError> {
        if let Some(idem) = &self.idempotency {
            let found = refund_requests::table
                .filter(refund_requests::idempotency_key.eq(&idem.scope_key))
                .select(RefundRequestRow::as_select())
                .get_result(cx.conn()?)
                .optional()?;
            if let Some(row) = found {
                if row.request_hash != idem.request_hash {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyConflict,
                        "this Idempotency-Key was already used with a different request",
                    ));
                }
                if row.state != REQUESTED {
                    return Ok(Opened::Answered(stored(&row)));
                }
                // Its amount is already held back: resume it as it was asked.
                let d = donation(cx, row.donation_id)?;
                return Ok(Opened::Card(card_refund(&row, &d)?));
            }
        }
        let d = donation(cx, self.donation_id)?;
        refundable_status(&d)?;
        let amount = refundable_amount(cx, &d, self.amount_minor, 0)?;
        if !self.outside_stripe {
            super::refund::within_refund_window(cx, &d)?;
        }
        if self.approval_above.is_some_and(|above| amount > above) {
            return super::approvals::ask_approval(self, cx, &d, amount);
        }
        if d.method != "card" || self.outside_stripe {
            // The money goes back outside the system: recorded at once.
            let outcome = RecordRefund {
                donation_id: d.id,
                amount_minor: Some(amount),
                reason: self.reason.clone(),
                actor: self.actor.clone(),
            }
            .apply(cx)?;
            let answer = StoredResponse {
                status: 200,
                body: serde_json::to_string(&outcome).map_err(AppError::internal)?,
            };
            self.insert(cx, amount, DONE, Some(&answer))?;
            return Ok(Opened::Answered(answer));
        }
        if !self.card_refunds {
            return Err(AppError::new(
                ErrorCode::PaymentsUnavailable,
                "Stripe is not configured; card refunds are unavailable",
            ));
        }
        let request_id = self.insert(cx, amount, REQUESTED, None)?;
        let row = request(cx, request_id)?;
        Ok(Opened::Card(card_refund(&row, &d)?))
    }
}

/// Records Stripe's answer to a card refund request: the cumulative refunded amount of the
/// charge (as `charge.refunded` reports it, so the webhook and this agree), then the answer.
#[derive(Debug)]
pub struct FinishRefund {
    /// The request.
    pub request_id: i64,
    /// The payment refunded.
    pub payment_intent: String,
    /// Its charge.
    pub charge: String,
    /// Refunded of the charge in all at Stripe, this refund included, minor units.
    pub amount_refunded: i64,
    /// `re_...`.
    pub stripe_refund_id: String,
    /// Stripe's status of the refund (`succeeded`, or `pending` on a method whose refunds
    /// settle later).
    pub status: String,
    /// The payment method type the charge names (recorded if the ledger lacks it: it decides
    /// how the refund counts).
    pub method_type: Option<String>,
}

impl FinishRefund {
    fn event(&self, cx: &Ctx<'_>) -> ApplyStripeEvent {
        ApplyStripeEvent::local_refund(
            format!("local:refund-request:{}", self.request_id),
            cx.now.and_utc().timestamp(),
            &self.payment_intent,
            &self.charge,
            self.amount_refunded,
        )
    }
}

impl Op for FinishRefund {
    type Output = StoredResponse;

    fn keys(&self, keys: &mut super::prefetch::BatchKeys) {
        keys.event_ids
            .push(format!("local:refund-request:{}", self.request_id));
        keys.payment_intents.push(self.payment_intent.clone());
    }

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<StoredResponse, AppError> {
        let row = request(cx, self.request_id)?;
        if row.state != REQUESTED {
            // Another attempt recorded it first.
            return Ok(stored(&row));
        }
        let mut d = donation(cx, row.donation_id)?;
        if let (None, Some(m)) = (&d.payment_method_type, &self.method_type) {
            super::card::presume_method(cx, d.id, m)?;
            d.payment_method_type = Some(m.clone());
        }
        if super::card::settles_later(&d) {
            // Counted when Stripe says it succeeded (now, or by a later event).
            super::card::refund_updated(
                cx,
                &d,
                &super::card::RefundUpdate {
                    refund: &self.stripe_refund_id,
                    amount: row.amount_minor,
                    status: &self.status,
                    request_id: Some(row.id),
                    failure_reason: None,
                },
            )?;
            return Ok(stored(&request(cx, row.id)?));
        }
        self.event(cx).apply(cx)?;
        let d = donation(cx, row.donation_id)?;
        let others = held_back(cx, d.id)? - row.amount_minor;
        let c = cx.st.currency;
        let outcome = RefundOutcome {
            donation_id: d.id,
            status: super::refund::REFUND_SUCCEEDED,
            refunded: Money::new(row.amount_minor, c),
            refunded_total: Money::new(d.refunded_minor, c),
            refundable: Money::new(
                (d.amount_minor - d.refunded_minor - d.disputed_minor - others).max(0),
                c,
            ),
            raised: Money::new(cx.st.row.raised_minor, c),
        };
        let answer = StoredResponse {
            status: 200,
            body: serde_json::to_string(&outcome).map_err(AppError::internal)?,
        };
        diesel::update(refund_requests::table.find(row.id))
            .set((
                refund_requests::state.eq(DONE),
                refund_requests::stripe_refund_id.eq(&self.stripe_refund_id),
                refund_requests::status_code.eq(i32::from(answer.status)),
                refund_requests::response_body.eq(&answer.body),
                refund_requests::updated_at.eq(cx.now),
            ))
            .execute(cx.conn()?)?;
        cx.audit(
            &row.actor,
            "donation.refund",
            &serde_json::json!({
                "donation_id": d.id,
                "amount": c.format(row.amount_minor),
                "reason": row.reason,
                "refund_request": row.id,
                "stripe_refund": self.stripe_refund_id,
            }),
        )?;
        Ok(answer)
    }
}

/// Records that Stripe refused a card refund request: its amount is no longer held back, and
/// a repeated request gets the same refusal (as Stripe itself answers a repeated key).
#[derive(Debug)]
pub struct FailRefund {
    /// The request.
    pub request_id: i64,
    /// The refusal as answered (problem+json).
    pub answer: StoredResponse,
}

impl Op for FailRefund {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let row = request(cx, self.request_id)?;
        if row.state != REQUESTED {
            return Ok(());
        }
        diesel::update(refund_requests::table.find(row.id))
            .set((
                refund_requests::state.eq(FAILED),
                refund_requests::status_code.eq(i32::from(self.answer.status)),
                refund_requests::response_body.eq(&self.answer.body),
                refund_requests::updated_at.eq(cx.now),
            ))
            .execute(cx.conn()?)?;
        cx.audit(
            &row.actor,
            "donation.refund_refused",
            &serde_json::json!({ "donation_id": row.donation_id, "refund_request": row.id }),
        )
    }
}
