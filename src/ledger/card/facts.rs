//! What each Stripe fact does to its donation and the ledger. Transitions are monotonic:
//! `succeeded` is final, refunds are cumulative, a dispute goes from none to open to won or
//! lost and never back, so a late or repeated fact changes nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::release_reservation;
use crate::db::models::DonationRow;
use crate::db::schema::donations;
use crate::domain::IntakeState;
use crate::error::AppError;
use crate::ledger::Fact;
use crate::ledger::{Ctx, Effect};

/// What still counts in raised for a succeeded donation.
fn counted(d: &DonationRow) -> i64 {
    d.amount_minor - d.refunded_minor - d.disputed_minor
}

fn set_status(
    cx: &mut Ctx<'_>,
    id: i64,
    status: &str,
    reserved_until: Option<NaiveDateTime>,
) -> Result<(), AppError> {
    diesel::update(donations::table.find(id))
        .set((
            donations::status.eq(status),
            donations::reserved_until.eq(reserved_until),
        ))
        .execute(cx.conn()?)?;
    Ok(())
}

/// Moves money out of a donation (refund or dispute): a ledger entry, and the count drops
/// when nothing of the donation counts any more.
pub(super) fn withdraw(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    kind: &str,
    amount: i64,
    memo: &str,
) -> Result<i64, AppError> {
    let have = counted(d);
    let take = amount.min(have).max(0);
    if take > 0 {
        let count_delta = if take == have { -1 } else { 0 };
        cx.append_entry(kind, Some(d.id), -take, count_delta, memo)?;
    }
    Ok(take)
}

/// A refusal of the donation's payment recorded with Stripe's `created` at or after `created`:
/// it ended the attempt an event of time `created` belongs to.
fn refused_since(cx: &mut Ctx<'_>, d: &DonationRow, created: i64) -> Result<bool, AppError> {
    use crate::db::schema::stripe_events;
    let Some(pi) = d.payment_intent_id.as_deref() else {
        return Ok(false);
    };
    // The refusal may be among this batch's buffered rows.
    let (conn, appended) = cx.parts()?;
    appended.flush_events(conn)?;
    let found: i64 = stripe_events::table
        .filter(stripe_events::payment_intent_id.eq(pi))
        .filter(stripe_events::event_type.eq("payment_intent.payment_failed"))
        .filter(stripe_events::applied_at.is_not_null())
        .filter(stripe_events::created.ge(created))
        .count()
        .get_result(cx.conn()?)?;
    Ok(found > 0)
}

/// A payment refused after its money was on its way (a bank debit returned): the donation
/// fails, its reservation goes, and the donor is told (once).
fn refused_after_processing(cx: &mut Ctx<'_>, d: &DonationRow) -> Result<(), AppError> {
    let c = cx.st.currency;
    release_reservation(cx, d);
    set_status(cx, d.id, "failed", None)?;
    if d.email.is_some() {
        let payload = serde_json::json!({
            "donation_id": d.id, "amount": c.format(d.amount_minor), "currency": c.code(),
        });
        let key = format!("payment_failed:{}", d.id);
        cx.queue_email("payment_failed", &key, Some(d.id), &d.locale, &payload)?;
    }
    Ok(())
}

/// Whether the charge has not yet said how the payment was made (no method recorded, no fee
/// read from it): a refund fact must wait, since the method decides how refunds count.
pub(super) fn charge_unheard(d: &DonationRow) -> bool {
    d.payment_intent_id.is_some() && d.payment_method_type.is_none() && d.fee_minor.is_none()
}

/// Applies `fact` (from an event Stripe created at `created`, Unix seconds) to `d`.
pub(super) fn apply_fact(
    cx: &mut Ctx<'_>,
    d: &DonationRow,
    fact: &Fact,
    created: i64,
) -> Result<(), AppError> {
    // The donation changes: later commands of the batch read it afresh.
    if let (Some(cache), Some(pi)) = (cx.cache.as_deref_mut(), d.payment_intent_id.as_deref()) {
        cache.by_intent.remove(pi);
    }
    let c = cx.st.currency;
    match fact {
        Fact::PaymentSucceeded {
            payment_intent,
            amount,
            charge,
            ..
        } => {
            if d.status == "succeeded" {
                return Ok(());
            }
            let after_close = cx.st.intake() != IntakeState::Open;
            release_reservation(cx, d);
            cx.mark_succeeded(crate::ledger::context::Succeeded {
                id: d.id,
                amount_minor: *amount,
                payment_intent: payment_intent.clone(),
                charge: charge.clone(),
                tie: d.payment_intent_id.as_deref() != Some(payment_intent.as_str()),
                after_close,
                at: cx.now,
            })?;
            let memo = if *amount == d.amount_minor {
                format!("card {payment_intent}")
            } else {
                format!(
                    "card {payment_intent} (asked {}, received {})",
                    c.format(d.amount_minor),
                    c.format(*amount)
                )
            };
            let entry = cx.append_entry("donation", Some(d.id), *amount, 1, &memo)?;
            if d.email.is_some() {
                let mut payload = serde_json::json!({
                    "donation_id": d.id,
                    "amount": c.format(*amount),
                    "currency": c.code(),
                    // No "method": the mailer names it when it sends, from what Stripe's
                    // charge said by then (a payload's own value would win).
                    "ledger_hash": entry.hash,
                    "ledger_seq": entry.seq,
                });
                if d.fee_covered_minor > 0 {
                    payload["fee_covered"] = c.format(d.fee_covered_minor).into();
                }
                cx.queue_email(
                    "receipt",
                    &crate::ledger::ops::receipt_key(d.id),
                    Some(d.id),
                    &d.locale,
                    &payload,
                )?;
            }
            cx.effect(Effect::FetchFees {
                donation_id: d.id,
                payment_intent: payment_intent.clone(),
                charge: charge.clone(),
            });
            cx.settle_intake()
        }
        Fact::PaymentProcessing { .. } => {
            // The money is on its way: not counted yet; a strict-mode reservation holds (the
            // sweep leaves processing payments alone) until it succeeds or fails.
            if !(d.status == "pending" || d.status == "failed") {
                return Ok(());
            }
            if d.status == "failed" && refused_since(cx, d, created)? {
                // Its refusal came later and was delivered first: this attempt failed after
                // processing.
                if d.processing_since.is_none() {
                    diesel::update(donations::table.find(d.id))
                        .set(donations::processing_since.eq(Some(cx.now)))
                        .execute(cx.conn()?)?;
                    refused_after_processing(cx, d)?;
                }
                return Ok(());
            }
            if d.status == "pending" && d.processing_since.is_some() {
                return Ok(()); // a repeat
            }
            // A first processing, or a new attempt after an older refusal. (A reservation a
            // refusal released is not taken again.)
            diesel::update(donations::table.find(d.id))
                .set((
                    donations::status.eq("pending"),
                    donations::processing_since.eq(Some(cx.now)),
                ))
                .execute(cx.conn()?)?;
            Ok(())
        }
        Fact::PaymentFailed { .. } if d.processing_since.is_some() => {
            if d.status == "pending" {
                refused_after_processing(cx, d)?;
            }
            Ok(())
        }
        Fact::PaymentFailed { .. } => {
            if d.status == "pending" {
                // The intent stays usable (another card may follow), so the reservation holds.
                set_status(cx, d.id, "failed", d.reserved_until)?;
            }
            Ok(())
        }
        Fact::PaymentCanceled { .. } => {
            if d.status == "pending" || d.status == "failed" {
                release_reservation(cx, d);
                set_status(cx, d.id, "canceled", None)?;
            }
            Ok(())
        }
        Fact::PaymentMethod {
            method_type,
            payment_intent,
            charge,
        } => {
            if d.payment_method_type.as_deref() != Some(method_type.as_str()) {
                diesel::update(donations::table.find(d.id))
                    .set(donations::payment_method_type.eq(method_type))
                    .execute(cx.conn()?)?;
            }
            if charge_unheard(d) {
                // Refund facts waited for this.
                super::events::apply_kept(cx, Some(payment_intent), Some(charge))?;
            }
            Ok(())
        }
        Fact::RefundUpdated {
            refund,
            amount,
            status,
            request_id,
            failure_reason,
            ..
        } => super::refund_updated(
            cx,
            d,
            &super::RefundUpdate {
                refund,
                amount: *amount,
                status,
                request_id: *request_id,
                failure_reason: failure_reason.as_deref(),
            },
        ),
        // Refunds that settle later count one by one, when each succeeds (`RefundUpdated`):
        // this total includes those still pending.
        Fact::ChargeRefunded { .. } if super::settles_later(d) => Ok(()),
        Fact::ChargeRefunded {
            amount_refunded,
            charge,
            ..
        } => {
            let delta = amount_refunded - d.refunded_minor;
            if delta <= 0 {
                return Ok(());
            }
            let take = withdraw(
                cx,
                d,
                "refund",
                delta,
                &format!("refund of {charge} at Stripe"),
            )?;
            diesel::update(donations::table.find(d.id))
                .set(donations::refunded_minor.eq(d.refunded_minor + take))
                .execute(cx.conn()?)?;
            if take > 0 && d.email.is_some() {
                let payload = serde_json::json!({
                    "donation_id": d.id, "amount": c.format(take), "currency": c.code(), "reason": "refunded",
                });
                let key = format!("refund:{}:{}", d.id, amount_refunded);
                cx.queue_email("refund", &key, Some(d.id), &d.locale, &payload)?;
            }
            Ok(())
        }
        Fact::DisputeOpened {
            dispute, amount, ..
        } => {
            if d.dispute_status.is_some() {
                return Ok(());
            }
            let take = withdraw(
                cx,
                d,
                "dispute",
                *amount,
                &format!("dispute {dispute} opened: funds withdrawn"),
            )?;
            diesel::update(donations::table.find(d.id))
                .set((
                    donations::disputed_minor.eq(d.disputed_minor + take),
                    donations::dispute_status.eq("open"),
                ))
                .execute(cx.conn()?)?;
            Ok(())
        }
        Fact::DisputeClosed {
            dispute,
            amount,
            won,
            ..
        } => {
            match (d.dispute_status.as_deref(), won) {
                (Some("open"), true) => {
                    let back = d.disputed_minor;
                    if back > 0 {
                        let count_delta = if counted(d) == 0 { 1 } else { 0 };
                        cx.append_entry(
                            "dispute_won",
                            Some(d.id),
                            back,
                            count_delta,
                            &format!("dispute {dispute} won: funds reinstated"),
                        )?;
                    }
                    diesel::update(donations::table.find(d.id))
                        .set((
                            donations::disputed_minor.eq(0),
                            donations::dispute_status.eq("won"),
                        ))
                        .execute(cx.conn()?)?;
                    // Reinstated money counts again: if it takes raised to the target, intake
                    // closes in this transaction, as for any other money that arrives.
                    cx.settle_intake()?;
                }
                (Some("open"), false) => {
                    diesel::update(donations::table.find(d.id))
                        .set(donations::dispute_status.eq("lost"))
                        .execute(cx.conn()?)?;
                }
                // Closed before we saw it open: won moves nothing; lost withdraws now.
                (None, true) => {
                    diesel::update(donations::table.find(d.id))
                        .set(donations::dispute_status.eq("won"))
                        .execute(cx.conn()?)?;
                }
                (None, false) => {
                    let take = withdraw(
                        cx,
                        d,
                        "dispute",
                        *amount,
                        &format!("dispute {dispute} lost: funds withdrawn"),
                    )?;
                    diesel::update(donations::table.find(d.id))
                        .set((
                            donations::disputed_minor.eq(d.disputed_minor + take),
                            donations::dispute_status.eq("lost"),
                        ))
                        .execute(cx.conn()?)?;
                }
                _ => {}
            }
            Ok(())
        }
        Fact::Payout { .. } | Fact::Foreign { .. } | Fact::Ignored => Ok(()),
    }
}
