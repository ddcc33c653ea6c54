//! Stripe's facts applied to the ledger: each event once, kept when its payment is not known
//! yet, with monotonic transitions (a late or repeated fact never undoes a later one).

use diesel::prelude::*;

use super::facts::{apply_fact, charge_unheard};
use crate::db::models::{DonationRow, StripeEventRow};
use crate::db::schema::{donations, stripe_events};
use crate::error::AppError;
use crate::ledger::Fact;
use crate::ledger::{Ctx, Op};

/// What became of a Stripe event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// Another Stripe account's or mode's event: stored as foreign, never applied.
    Foreign,
    /// A payment naming one of our donations with another amount or currency (or paid in
    /// another currency than its intent's donation): stored and reported, never credited.
    Mismatch,
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

impl ApplyStripeEvent {
    /// A refund learnt from Stripe's answer to our own request (not a webhook): the charge's
    /// cumulative refunded amount, applied exactly like `charge.refunded`, so whichever of the
    /// two arrives first records the money and the other changes nothing.
    pub fn local_refund(
        event_id: String,
        created: i64,
        payment_intent: &str,
        charge: &str,
        amount_refunded: i64,
    ) -> ApplyStripeEvent {
        ApplyStripeEvent {
            event_id,
            event_type: "local.refund".into(),
            created,
            fact: Fact::ChargeRefunded {
                payment_intent: Some(payment_intent.to_owned()),
                charge: charge.to_owned(),
                amount_refunded,
            },
            keep_unknown: false,
        }
    }
}

/// True if the event id was recorded before (in the database, or earlier in this batch).
fn seen(cx: &mut Ctx<'_>, event_id: &str) -> Result<bool, AppError> {
    if let Some(cache) = cx.cache.as_deref() {
        return Ok(cache.seen.contains(event_id));
    }
    Ok(stripe_events::table
        .find(event_id)
        .select(stripe_events::event_id)
        .first::<String>(cx.conn()?)
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

    /// A payment's success or failure, a repeated event and another account's or mode's
    /// event only buffer rows in the fast pass; refunds, disputes, payouts, kept events and
    /// unknown PaymentIntents use the connection.
    fn buffered(&self) -> bool {
        true
    }

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<EventOutcome, AppError> {
        if self.fact == Fact::Ignored {
            return Ok(EventOutcome::Ignored);
        }
        if let Fact::Payout { .. } = &self.fact {
            if seen(cx, &self.event_id)? {
                return Ok(EventOutcome::Duplicate);
            }
            record_event(cx, self, &self.fact, true)?;
            super::super::payouts::record_payout(cx, &self.fact)?;
            return Ok(EventOutcome::Applied);
        }
        if seen(cx, &self.event_id)? {
            return Ok(EventOutcome::Duplicate);
        }
        if let Fact::Foreign { .. } = &self.fact {
            // Decided from the event before the writer; stored as done (not kept), so it
            // never makes a later batch look for kept events.
            record_event(cx, self, &self.fact, true)?;
            return Ok(EventOutcome::Foreign);
        }
        let donation = find_donation(cx, &self.fact)?;
        if let Some((d, reason)) = donation
            .as_ref()
            .and_then(|d| mismatch(d, &self.fact).map(|r| (d, r)))
        {
            tracing::error!(donation = d.id, event_id = %self.event_id, %reason, "payment does not match its donation; stored, not credited");
            let stored = Fact::Foreign {
                reason: reason.clone(),
                said: Box::new(self.fact.clone()),
            };
            record_event(cx, self, &stored, true)?;
            cx.audit(
                "stripe",
                "payment.mismatch",
                &serde_json::json!({
                    "event_id": self.event_id, "donation_id": d.id,
                    "payment_intent": self.fact.payment_intent(), "reason": reason,
                }),
            )?;
            return Ok(EventOutcome::Mismatch);
        }
        let ready = donation.as_ref().is_some_and(|d| can_apply(d, &self.fact));
        if !ready && donation.is_none() && !self.keep_unknown {
            return Ok(EventOutcome::NotOurs);
        }
        record_event(cx, self, &self.fact, ready)?;
        if !ready {
            return Ok(EventOutcome::Kept);
        }
        if let Some(d) = donation {
            apply_fact(cx, &d, &self.fact, self.created)?;
            if matches!(self.fact, Fact::PaymentSucceeded { .. }) {
                let charge = self.fact.charge().map(str::to_owned);
                apply_kept(cx, self.fact.payment_intent(), charge.as_deref())?;
            }
        }
        Ok(EventOutcome::Applied)
    }
}

/// Why a payment must not be credited to the donation it names, if it must not: paid in
/// another currency, or, when it names the donation only through `metadata.donation_id`
/// (not the intent we created for it), for another amount. (Another mode or account is
/// decided before the writer: `Fact::Foreign`.)
fn mismatch(d: &DonationRow, fact: &Fact) -> Option<String> {
    let Fact::PaymentSucceeded {
        payment_intent,
        amount,
        currency,
        ..
    } = fact
    else {
        return None;
    };
    if !currency.eq_ignore_ascii_case(&d.currency) {
        return Some(format!(
            "{payment_intent} was paid in {currency:?}; donation {} is in {}",
            d.id, d.currency
        ));
    }
    let ours = d.payment_intent_id.as_deref() == Some(payment_intent.as_str());
    if !ours && *amount != d.amount_minor {
        return Some(format!(
            "{payment_intent} received {amount} minor units; donation {} named in its metadata is of {}",
            d.id, d.amount_minor
        ));
    }
    None
}

/// Records the event `e` as `fact` (what it said, or why it was not applied).
fn record_event(
    cx: &mut Ctx<'_>,
    e: &ApplyStripeEvent,
    fact: &Fact,
    applied: bool,
) -> Result<(), AppError> {
    // A foreign fact is filed under the payment it named, for whoever looks it up.
    let about = match fact {
        Fact::Foreign { said, .. } => said.as_ref(),
        f => f,
    };
    let payment_intent_id = about.payment_intent().map(str::to_owned);
    let charge_id = about.charge().map(str::to_owned);
    let fact = serde_json::to_string(fact).map_err(AppError::internal)?;
    let row = StripeEventRow {
        event_id: e.event_id.clone(),
        event_type: e.event_type.clone(),
        payment_intent_id,
        charge_id,
        created: e.created,
        received_at: cx.now,
        applied_at: applied.then_some(cx.now),
        fact,
    };
    // In the batch's fast pass the row joins the batch's buffered rows; the cache knows it,
    // and knows a kept event now exists (even after the buffer is written out by another
    // command's look-up, its payment's success must look for it).
    if let Some(cache) = cx.cache.as_deref_mut() {
        cache.seen.insert(row.event_id.clone());
        cache.kept_exist |= !applied;
        cx.appended.events.push(row);
        return Ok(());
    }
    diesel::insert_into(stripe_events::table)
        .values(&row)
        .execute(cx.conn()?)?;
    Ok(())
}

/// Applies the events kept for a payment that has just become known, oldest first.
pub(super) fn apply_kept(
    cx: &mut Ctx<'_>,
    pi: Option<&str>,
    charge: Option<&str>,
) -> Result<(), AppError> {
    if cx.cache.as_deref().is_some_and(|cache| !cache.kept_exist) {
        return Ok(());
    }
    // Kept events may be among this batch's buffered rows: write them before reading.
    let (conn, appended) = cx.parts()?;
    appended.flush_events(conn)?;
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
    let kept: Vec<StripeEventRow> = q.load(cx.conn()?)?;
    for row in kept {
        let fact: Fact = serde_json::from_str(&row.fact).map_err(AppError::internal)?;
        let Some(d) = find_donation(cx, &fact)? else {
            continue;
        };
        let ready = match &fact {
            // Kept before mismatches were told apart: still never credited.
            Fact::PaymentSucceeded { .. } => mismatch(&d, &fact).is_none(),
            f => can_apply(&d, f),
        };
        if !ready {
            continue;
        }
        apply_fact(cx, &d, &fact, row.created)?;
        diesel::update(stripe_events::table.find(&row.event_id))
            .set(stripe_events::applied_at.eq(Some(cx.now)))
            .execute(cx.conn()?)?;
    }
    Ok(())
}

/// Whether a fact about `d` can be applied now: the payment's own events at once; refunds
/// and disputes once the payment is recorded, refunds also once the charge has said how it
/// was paid (the method decides how they count). Otherwise the event is kept.
fn can_apply(d: &DonationRow, f: &Fact) -> bool {
    match f {
        Fact::PaymentSucceeded { .. }
        | Fact::PaymentProcessing { .. }
        | Fact::PaymentFailed { .. }
        | Fact::PaymentCanceled { .. }
        | Fact::PaymentMethod { .. } => true,
        Fact::ChargeRefunded { .. } | Fact::RefundUpdated { .. } => {
            d.status == "succeeded" && !charge_unheard(d)
        }
        _ => d.status == "succeeded",
    }
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
    // `get_result`, not `first`: on SQLite a bound LIMIT prepares the statement again at
    // every run (see `ledger::cached`).
    if let Some(pi) = fact.payment_intent() {
        let found = donations::table
            .filter(donations::payment_intent_id.eq(pi))
            .select(DonationRow::as_select())
            .get_result(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(ch) = fact.charge() {
        let found = donations::table
            .filter(donations::charge_id.eq(ch))
            .select(DonationRow::as_select())
            .get_result(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let by_metadata = match fact {
        Fact::PaymentSucceeded { donation_id, .. }
        | Fact::PaymentProcessing { donation_id, .. }
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
            .get_result(conn)
            .optional()?),
        None => Ok(None),
    }
}
