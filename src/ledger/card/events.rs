//! Stripe's facts applied to the ledger: each event once, kept when its payment is not known
//! yet, with monotonic transitions (a late or repeated fact never undoes a later one).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::release_reservation;
use crate::db::models::{DonationRow, StripeEventRow};
use crate::db::schema::{donations, stripe_events};
use crate::domain::IntakeState;
use crate::error::AppError;
use crate::ledger::{Ctx, Effect, Op};
use crate::payments::events::Fact;

/// What became of a Stripe event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Applied to the ledger now.
    Applied,
    /// Seen before: nothing done.
    Duplicate,
    /// Its payment is not known (or not yet succeeded): kept, applied when it is.
    Kept,
    /// A type crowdledger does not act on.
    Ignored,
    /// Not one of our payments (reconcile only).
    NotOurs,
}

/// Applies one Stripe event (or a fact learnt from the API, with a synthetic id) once.
#[derive(Debug)]
pub struct ApplyStripeEvent {
    /// `evt_...`, or a local id such as `reconcile:pi_...:succeeded`.
    pub event_id: String,
    /// The event type, for the record.
    pub event_type: String,
    /// Stripe's `created` (orders kept events).
    pub created: i64,
    /// What it says.
    pub fact: Fact,
    /// Keep it for later when its payment is unknown (true for webhooks).
    pub keep_unknown: bool,
}

/// True if the event id was recorded before (in the database, or earlier in this batch).
fn seen(cx: &mut Ctx<'_>, event_id: &str) -> Result<bool, AppError> {
    if let Some(cache) = cx.cache.as_deref() {
        return Ok(cache.seen.contains(event_id));
    }
    Ok(stripe_events::table
        .find(event_id)
        .select(stripe_events::event_id)
        .first::<String>(cx.conn)
        .optional()?
        .is_some())
}

impl Op for ApplyStripeEvent {
    type Output = EventOutcome;

    fn keys(&self, keys: &mut crate::ledger::prefetch::BatchKeys) {
        keys.event_ids.push(self.event_id.clone());
        if let Some(pi) = self.fact.payment_intent() {
            keys.payment_intents.push(pi.to_owned());
        }
    }

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<EventOutcome, AppError> {
        if self.fact == Fact::Ignored {
            return Ok(EventOutcome::Ignored);
        }
        if let Fact::Payout { .. } = &self.fact {
            if seen(cx, &self.event_id)? {
                return Ok(EventOutcome::Duplicate);
            }
            record_event(cx, self, true)?;
            super::super::payouts::record_payout(cx, &self.fact)?;
            return Ok(EventOutcome::Applied);
        }
        if seen(cx, &self.event_id)? {
            return Ok(EventOutcome::Duplicate);
        }
        let donation = find_donation(cx, &self.fact)?;
        let ready = match (&donation, &self.fact) {
            (None, _) => false,
            (Some(d), Fact::PaymentSucceeded { currency, .. }) => {
                if !currency.eq_ignore_ascii_case(&d.currency) {
                    tracing::error!(donation = d.id, %currency, "payment in another currency; kept, not applied");
                    false
                } else {
                    true
                }
            }
            (Some(_), Fact::PaymentFailed { .. } | Fact::PaymentCanceled { .. }) => true,
            // Refunds and disputes need the payment recorded first.
            (Some(d), _) => d.status == "succeeded",
        };
        if !ready && donation.is_none() && !self.keep_unknown {
            return Ok(EventOutcome::NotOurs);
        }
        record_event(cx, self, ready)?;
        if !ready {
            return Ok(EventOutcome::Kept);
        }
        if let Some(d) = donation {
            apply_fact(cx, &d, &self.fact)?;
            if matches!(self.fact, Fact::PaymentSucceeded { .. }) {
                let charge = self.fact.charge().map(str::to_owned);
                apply_kept(cx, self.fact.payment_intent(), charge.as_deref())?;
            }
        }
        Ok(EventOutcome::Applied)
    }
}

fn record_event(cx: &mut Ctx<'_>, e: &ApplyStripeEvent, applied: bool) -> Result<(), AppError> {
    let fact = serde_json::to_string(&e.fact).map_err(AppError::internal)?;
    let row = StripeEventRow {
        event_id: e.event_id.clone(),
        event_type: e.event_type.clone(),
        payment_intent_id: e.fact.payment_intent().map(str::to_owned),
        charge_id: e.fact.charge().map(str::to_owned),
        created: e.created,
        received_at: cx.now,
        applied_at: applied.then_some(cx.now),
        fact,
    };
    // In the batch's fast pass the row joins the batch's multi-row insert; the cache knows it.
    if let Some(cache) = cx.cache.as_deref_mut() {
        cache.seen.insert(row.event_id.clone());
        cx.appended.events.push(row);
        return Ok(());
    }
    diesel::insert_into(stripe_events::table)
        .values(&row)
        .execute(cx.conn)?;
    Ok(())
}

/// Applies the events kept for a payment that has just become known, oldest first.
pub(super) fn apply_kept(
    cx: &mut Ctx<'_>,
    pi: Option<&str>,
    charge: Option<&str>,
) -> Result<(), AppError> {
    if let Some(cache) = cx.cache.as_deref() {
        let buffered_kept = cx.appended.events.iter().any(|e| e.applied_at.is_none());
        if !cache.kept_exist && !buffered_kept {
            return Ok(());
        }
    }
    // Kept events may be among this batch's buffered rows: write them before reading.
    cx.appended.flush_events(cx.conn)?;
    let mut q = stripe_events::table
        .filter(stripe_events::applied_at.is_null())
        .select(StripeEventRow::as_select())
        .order((stripe_events::created.asc(), stripe_events::event_id.asc()))
        .into_boxed();
    q = match (pi, charge) {
        (Some(p), Some(c)) => q.filter(
            stripe_events::payment_intent_id
                .eq(p)
                .or(stripe_events::charge_id.eq(c)),
        ),
        (Some(p), None) => q.filter(stripe_events::payment_intent_id.eq(p)),
        (None, Some(c)) => q.filter(stripe_events::charge_id.eq(c)),
        (None, None) => return Ok(()),
    };
    let kept: Vec<StripeEventRow> = q.load(cx.conn)?;
    for row in kept {
        let fact: Fact = serde_json::from_str(&row.fact).map_err(AppError::internal)?;
        let Some(d) = find_donation(cx, &fact)? else {
            continue;
        };
        let ready = match &fact {
            Fact::PaymentSucceeded { currency, .. } => currency.eq_ignore_ascii_case(&d.currency),
            Fact::PaymentFailed { .. } | Fact::PaymentCanceled { .. } => true,
            _ => d.status == "succeeded",
        };
        if !ready {
            continue;
        }
        apply_fact(cx, &d, &fact)?;
        diesel::update(stripe_events::table.find(&row.event_id))
            .set(stripe_events::applied_at.eq(Some(cx.now)))
            .execute(cx.conn)?;
    }
    Ok(())
}

/// Our donation a fact is about: by PaymentIntent, by charge, or (for an intent we have not
/// tied yet) by the donation id in its metadata.
fn find_donation(cx: &mut Ctx<'_>, fact: &Fact) -> Result<Option<DonationRow>, AppError> {
    if let (Some(cache), Some(pi)) = (cx.cache.as_deref(), fact.payment_intent())
        && let Some(d) = cache.by_intent.get(pi)
    {
        return Ok(Some(d.clone()));
    }
    let conn = cx.donations_table()?;
    if let Some(pi) = fact.payment_intent() {
        let found = donations::table
            .filter(donations::payment_intent_id.eq(pi))
            .select(DonationRow::as_select())
            .first(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(ch) = fact.charge() {
        let found = donations::table
            .filter(donations::charge_id.eq(ch))
            .select(DonationRow::as_select())
            .first(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let by_metadata = match fact {
        Fact::PaymentSucceeded { donation_id, .. }
        | Fact::PaymentFailed { donation_id, .. }
        | Fact::PaymentCanceled { donation_id, .. } => *donation_id,
        _ => None,
    };
    match by_metadata {
        Some(id) => Ok(donations::table
            .find(id)
            .filter(donations::method.eq("card"))
            .filter(donations::payment_intent_id.is_null())
            .select(DonationRow::as_select())
            .first(conn)
            .optional()?),
        None => Ok(None),
    }
}

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
        .execute(cx.conn)?;
    Ok(())
}

/// Moves money out of a donation (refund or dispute): a ledger entry, and the count drops
/// when nothing of the donation counts any more.
fn withdraw(
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

fn apply_fact(cx: &mut Ctx<'_>, d: &DonationRow, fact: &Fact) -> Result<(), AppError> {
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
                let payload = serde_json::json!({
                    "donation_id": d.id,
                    "amount": c.format(*amount),
                    "currency": c.code(),
                    "method": "card",
                    "ledger_hash": entry.hash,
                });
                cx.queue_email(
                    "receipt",
                    &format!("receipt:{}", d.id),
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
                .execute(cx.conn)?;
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
                .execute(cx.conn)?;
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
                        .execute(cx.conn)?;
                }
                (Some("open"), false) => {
                    diesel::update(donations::table.find(d.id))
                        .set(donations::dispute_status.eq("lost"))
                        .execute(cx.conn)?;
                }
                // Closed before we saw it open: won moves nothing; lost withdraws now.
                (None, true) => {
                    diesel::update(donations::table.find(d.id))
                        .set(donations::dispute_status.eq("won"))
                        .execute(cx.conn)?;
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
                        .execute(cx.conn)?;
                }
                _ => {}
            }
            Ok(())
        }
        Fact::Payout { .. } | Fact::Ignored => Ok(()),
    }
}
