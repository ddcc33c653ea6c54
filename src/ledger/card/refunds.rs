//! Refunds that finish later (bank debits, Alipay, WeChat Pay): Stripe answers a refund
//! `pending` and says `succeeded` or `failed` afterwards. Such a donation's refunds are
//! counted one by one, each when Stripe says it succeeded; `charge.refunded` (whose
//! cumulative `amount_refunded` includes refunds still pending) is not read for them. Each
//! refund is a `refund_requests` row (ours from the admin route, or one written here for a
//! refund made in Stripe's Dashboard), which makes counting it idempotent: a row is `done`
//! once.

use diesel::prelude::*;

use super::facts::withdraw;
use crate::db::models::{DonationRow, NewRefundRequest, RefundRequestRow};
use crate::db::schema::{donations, refund_requests, users};
use crate::domain::payment_methods::refunds_settle_later;
use crate::error::{AppError, ErrorCode};
use crate::ledger::Ctx;
use crate::ledger::refund::{REFUND_PENDING, REFUND_SUCCEEDED, RefundOutcome};
use crate::ledger::refund_requests::{DONE, FAILED, PENDING, REQUESTED};
use crate::money::Money;

/// Whether a donation's refunds are counted one by one, when each succeeds.
pub(crate) fn settles_later(d: &DonationRow) -> bool {
    d.payment_method_type
        .as_deref()
        .is_some_and(refunds_settle_later)
}

/// What Stripe says of one refund.
#[derive(Debug, Clone)]
pub(crate) struct RefundUpdate<'a> {
    /// `re_...`.
    pub refund: &'a str,
    /// Amount, minor units.
    pub amount: i64,
    /// Stripe's status.
    pub status: &'a str,
    /// Our request named in the refund's metadata (or the one being finished).
    pub request_id: Option<i64>,
    /// Why it failed, if it did.
    pub failure_reason: Option<&'a str>,
}

/// The request row of a refund: by Stripe's id, else by the id in its metadata.
fn request_of(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    u: &RefundUpdate<'_>,
) -> Result<Option<RefundRequestRow>, AppError> {
    let rows: Vec<RefundRequestRow> = refund_requests::table
        .filter(refund_requests::donation_id.eq(d.id))
        .select(RefundRequestRow::as_select())
        .load(cx.conn()?)?;
    Ok(rows
        .iter()
        .find(|r| r.stripe_refund_id.as_deref() == Some(u.refund))
        .or_else(|| rows.iter().find(|r| Some(r.id) == u.request_id))
        .cloned())
}

/// Applies what Stripe says of a refund on a donation whose refunds settle later (others are
/// counted from `charge.refunded`, so this does nothing for them).
pub(crate) fn refund_updated(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    u: &RefundUpdate<'_>,
) -> Result<(), AppError> {
    if !settles_later(d) {
        return Ok(());
    }
    let row = request_of(cx, d, u)?;
    match u.status {
        "succeeded" => succeeded(cx, d, u, row),
        "failed" | "canceled" => failed(cx, d, u, row),
        _ => {
            // Made, not finished: its amount stays held back from other refunds.
            match row {
                Some(r) if r.state == REQUESTED => {
                    let answer = outcome(cx, d, &r, REFUND_PENDING)?;
                    settle_row(cx, &r, PENDING, u.refund, 202, &answer)?;
                }
                Some(_) => {}
                None => {
                    insert_row(cx, d, u, PENDING)?;
                }
            }
            Ok(())
        }
    }
}

fn succeeded(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    u: &RefundUpdate<'_>,
    row: Option<RefundRequestRow>,
) -> Result<(), AppError> {
    if row.as_ref().is_some_and(|r| r.state == DONE) {
        return Ok(());
    }
    let c = cx.st.currency;
    let take = withdraw(
        cx,
        d,
        "refund",
        u.amount,
        &format!("refund {} at Stripe", u.refund),
    )?;
    diesel::update(donations::table.find(d.id))
        .set(donations::refunded_minor.eq(d.refunded_minor + take))
        .execute(cx.conn()?)?;
    let after = DonationRow {
        refunded_minor: d.refunded_minor + take,
        ..d.clone()
    };
    let (actor, reason) = match &row {
        Some(r) => {
            let answer = outcome(cx, &after, r, REFUND_SUCCEEDED)?;
            settle_row(cx, r, DONE, u.refund, 200, &answer)?;
            (r.actor.clone(), r.reason.clone())
        }
        None => {
            insert_row(cx, d, u, DONE)?;
            ("stripe".to_owned(), "refund made at Stripe".to_owned())
        }
    };
    if take > 0 && d.email.is_some() {
        let payload = serde_json::json!({
            "donation_id": d.id, "amount": c.format(take), "currency": c.code(), "reason": "refunded",
        });
        let key = format!("refund:{}:{}", d.id, u.refund);
        cx.queue_email("refund", &key, Some(d.id), &d.locale, &payload)?;
    }
    cx.audit(
        &actor,
        "donation.refund",
        &serde_json::json!({
            "donation_id": d.id, "amount": c.format(take), "reason": reason,
            "stripe_refund": u.refund, "settled_later": true,
        }),
    )
}

fn failed(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    u: &RefundUpdate<'_>,
    row: Option<RefundRequestRow>,
) -> Result<(), AppError> {
    let c = cx.st.currency;
    let why = u.failure_reason.unwrap_or("unknown");
    match &row {
        Some(r) if r.state == DONE => {
            // Counted when it succeeded; Stripe now says it failed. The money is with the
            // fund again at Stripe, but the ledger's entries are not rewritten: the admins
            // are told, to record what happened.
            tracing::error!(
                donation = d.id,
                refund = u.refund,
                "a refund counted as made has failed"
            );
        }
        Some(r) if r.state == FAILED => return Ok(()),
        Some(r) => {
            let e = AppError::new(
                ErrorCode::PaymentProviderError,
                format!("Stripe could not make this refund ({why}); nothing was refunded"),
            );
            let body = e.problem().to_string();
            settle_row(
                cx,
                r,
                FAILED,
                u.refund,
                i32::from(e.code.status().as_u16()),
                &body,
            )?;
        }
        None => {
            insert_row(cx, d, u, FAILED)?;
        }
    }
    // One email per admin, each with its own retries.
    let admins: Vec<(i64, String)> = users::table
        .filter(users::role.eq("admin"))
        .filter(users::disabled.eq(false))
        .select((users::id, users::email))
        .order(users::id)
        .load(cx.conn()?)?;
    for (user_id, email) in admins {
        let payload = serde_json::json!({
            "to": email, "refund_donation": d.id, "amount": c.format(u.amount),
            "currency": c.code(), "refund": u.refund, "failure_reason": why,
            "method": d.payment_method_type,
        });
        let key = format!("refund_failed:{}:{user_id}", u.refund);
        cx.queue_email("refund_failed", &key, None, "en", &payload)?;
    }
    cx.audit(
        row.as_ref().map_or("stripe", |r| r.actor.as_str()),
        "donation.refund_failed",
        &serde_json::json!({
            "donation_id": d.id, "amount": c.format(u.amount), "stripe_refund": u.refund,
            "failure_reason": why,
        }),
    )
}

/// The answer a request gets (and a repeated request gets again).
fn outcome(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    own: &RefundRequestRow,
    status: &'static str,
) -> Result<String, AppError> {
    let c = cx.st.currency;
    let amount = own.amount_minor;
    // What the donation's other open requests hold back.
    let held: i64 = refund_requests::table
        .filter(refund_requests::donation_id.eq(d.id))
        .filter(refund_requests::id.ne(own.id))
        .filter(refund_requests::state.eq_any([REQUESTED, PENDING]))
        .select(refund_requests::amount_minor)
        .load::<i64>(cx.conn()?)?
        .iter()
        .sum();
    // A pending refund's own amount is held back; a finished one's is refunded.
    let out = RefundOutcome {
        donation_id: d.id,
        status,
        refunded: Money::new(amount, c),
        refunded_total: Money::new(d.refunded_minor, c),
        refundable: Money::new(
            (d.amount_minor
                - d.refunded_minor
                - d.disputed_minor
                - held
                - if status == REFUND_PENDING { amount } else { 0 })
            .max(0),
            c,
        ),
        raised: Money::new(cx.st.row.raised_minor, c),
    };
    serde_json::to_string(&out).map_err(AppError::internal)
}

fn settle_row(
    cx: &mut Ctx<'_>,
    r: &RefundRequestRow,
    state: &str,
    refund: &str,
    status_code: i32,
    body: &str,
) -> Result<(), AppError> {
    diesel::update(refund_requests::table.find(r.id))
        .set((
            refund_requests::state.eq(state),
            refund_requests::stripe_refund_id.eq(refund),
            refund_requests::status_code.eq(status_code),
            refund_requests::response_body.eq(body),
            refund_requests::updated_at.eq(cx.now),
        ))
        .execute(cx.conn()?)?;
    Ok(())
}

/// A row for a refund made outside the admin route (Stripe's Dashboard).
fn insert_row(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    u: &RefundUpdate<'_>,
    state: &str,
) -> Result<(), AppError> {
    let now = cx.now;
    diesel::insert_into(refund_requests::table)
        .values(&NewRefundRequest {
            idempotency_key: None,
            request_hash: "",
            donation_id: d.id,
            amount_minor: u.amount.max(1),
            actor: "stripe",
            reason: "refund made at Stripe",
            state,
            stripe_refund_id: Some(u.refund),
            outside_stripe: false,
            status_code: None,
            response_body: None,
            created_at: now,
            updated_at: now,
        })
        .execute(cx.conn()?)?;
    Ok(())
}
