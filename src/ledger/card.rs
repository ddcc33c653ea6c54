//! Card donations: creating the pending donation (with a reservation in strict mode), tying
//! it to its PaymentIntent, and applying Stripe's facts exactly once, in any order.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ops::{Idempotency, StoredResponse};
use super::{Ctx, Effect, Op};
use crate::db::models::{DonationRow, IdempotencyRow, NewDonation, StripeEventRow};
use crate::db::schema::{donations, idempotency_keys, stripe_events};
use crate::domain::{CapMode, IntakeState};
use crate::error::{AppError, ErrorCode};
use crate::money::DonationAmount;
use crate::payments::events::Fact;

/// A checked card gift from the donation page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CardGift {
    /// Amount within the page's bounds.
    #[serde(skip)]
    pub amount: DonationAmount,
    /// Minor units, for the idempotency fingerprint.
    pub amount_minor: i64,
    /// Name on the receipt.
    pub donor_name: String,
    /// Where the receipt goes.
    pub email: String,
    /// Not shown publicly by name.
    pub anonymous: bool,
    /// Receipt language.
    pub locale: String,
}

/// What creating a card donation gave.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new pending donation; its PaymentIntent is to be created.
    New {
        /// Donation id.
        donation_id: i64,
    },
    /// The same request was answered before.
    Replayed(StoredResponse),
}

/// Writes a pending card donation: intake must be open; in strict mode the amount is
/// reserved and refused beyond `target − raised − reserved`.
#[derive(Debug)]
pub struct CreateCardDonation {
    /// The gift.
    pub gift: CardGift,
    /// Idempotency key, if sent.
    pub idempotency: Option<Idempotency>,
    /// How long a strict-mode reservation holds.
    pub reservation_ttl: chrono::Duration,
}

impl Op for CreateCardDonation {
    type Output = Created;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Created, AppError> {
        if let Some(idem) = &self.idempotency {
            let found = idempotency_keys::table
                .find(&idem.scope_key)
                .select(IdempotencyRow::as_select())
                .first(cx.conn)
                .optional()?;
            match found {
                Some(row) if row.request_hash != idem.request_hash => {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyConflict,
                        "this Idempotency-Key was already used with a different request",
                    ));
                }
                Some(row)
                    if row.status_code == 0 && row.created_at > cx.now - self.reservation_ttl =>
                {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyConflict,
                        "a request with this Idempotency-Key is still in progress; retry shortly",
                    ));
                }
                // Left in progress by a crash long ago: start afresh.
                Some(row) if row.status_code == 0 => {
                    diesel::delete(idempotency_keys::table.find(&row.scope_key))
                        .execute(cx.conn)?;
                }
                Some(row) => {
                    return Ok(Created::Replayed(StoredResponse {
                        status: u16::try_from(row.status_code).unwrap_or(201),
                        body: row.response_body,
                    }));
                }
                None => {}
            }
        }
        let c = cx.st.currency;
        let intake = cx.st.intake();
        if intake != IntakeState::Open {
            let message = &cx.st.row.intake_message;
            return Err(AppError {
                code: ErrorCode::IntakeClosed,
                detail: if message.is_empty() {
                    "the fund is not taking donations now".into()
                } else {
                    message.clone()
                },
                extra: Some(serde_json::json!({ "state": intake.as_str() })),
            });
        }
        let amount = self.gift.amount.minor();
        let strict = cx.st.cap_mode() == CapMode::Strict;
        if strict {
            let row = &cx.st.row;
            let remaining = (row.target_minor - row.raised_minor - row.reserved_minor).max(0);
            if amount > remaining {
                return Err(AppError {
                    code: ErrorCode::ExceedsRemaining,
                    detail: format!(
                        "only {} {} remains to be raised",
                        c.format(remaining),
                        c.code()
                    ),
                    extra: Some(serde_json::json!({ "remaining": c.format(remaining) })),
                });
            }
            cx.st.row.reserved_minor += amount;
        }
        let g = &self.gift;
        let id = cx.insert_donation(NewDonation {
            id: 0,
            method: "card".into(),
            status: "pending".into(),
            amount_minor: amount,
            currency: c.code().into(),
            donor_name: g.donor_name.clone(),
            email: Some(g.email.clone()),
            anonymous: g.anonymous,
            locale: g.locale.clone(),
            reference: None,
            received_on: None,
            payment_intent_id: None,
            after_close: false,
            recorded_by: None,
            created_at: cx.now,
            succeeded_at: None,
            reserved_until: strict.then(|| cx.now + self.reservation_ttl),
        });
        if let Some(idem) = &self.idempotency {
            // Status 0: in progress, until the intent exists.
            diesel::insert_into(idempotency_keys::table)
                .values(&IdempotencyRow {
                    scope_key: idem.scope_key.clone(),
                    request_hash: idem.request_hash.clone(),
                    status_code: 0,
                    response_body: String::new(),
                    created_at: cx.now,
                })
                .execute(cx.conn)?;
        }
        Ok(Created::New { donation_id: id })
    }
}

/// Ties a pending donation to its PaymentIntent and remembers the answer for its key.
#[derive(Debug)]
pub struct AttachIntent {
    /// Donation id.
    pub donation_id: i64,
    /// `pi_...`.
    pub payment_intent: String,
    /// The key and the answer to remember for it.
    pub remember: Option<(String, StoredResponse)>,
}

impl Op for AttachIntent {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        diesel::update(donations::table.find(self.donation_id))
            .set(donations::payment_intent_id.eq(&self.payment_intent))
            .execute(cx.donations_table()?)?;
        if let Some((key, resp)) = &self.remember {
            diesel::update(idempotency_keys::table.find(key))
                .set((
                    idempotency_keys::status_code.eq(i32::from(resp.status)),
                    idempotency_keys::response_body.eq(&resp.body),
                ))
                .execute(cx.conn)?;
        }
        // A succeeded event may have arrived before we knew the intent (kept): apply it now.
        apply_kept(cx, Some(&self.payment_intent), None)
    }
}

/// Removes a pending donation whose PaymentIntent could not be created (nothing was charged),
/// releasing its reservation and its idempotency key so the donor can retry.
#[derive(Debug)]
pub struct AbandonDonation {
    /// Donation id.
    pub donation_id: i64,
    /// Its idempotency key, if any.
    pub idempotency_key: Option<String>,
}

impl Op for AbandonDonation {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let conn = cx.donations_table()?;
        let d: Option<DonationRow> = donations::table
            .find(self.donation_id)
            .select(DonationRow::as_select())
            .first(conn)
            .optional()?;
        if let Some(d) = d.filter(|d| d.status == "pending" && d.payment_intent_id.is_none()) {
            diesel::delete(donations::table.find(d.id)).execute(cx.conn)?;
            release_reservation(cx, &d);
        }
        if let Some(key) = &self.idempotency_key {
            diesel::delete(idempotency_keys::table.find(key)).execute(cx.conn)?;
        }
        Ok(())
    }
}

/// Stores fee and net from the charge's balance transaction.
#[derive(Debug)]
pub struct SetFees {
    /// Donation id.
    pub donation_id: i64,
    /// Stripe's fee, minor units.
    pub fee_minor: i64,
    /// Net, minor units.
    pub net_minor: i64,
    /// The charge.
    pub charge: String,
}

impl Op for SetFees {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        diesel::update(donations::table.find(self.donation_id))
            .set((
                donations::fee_minor.eq(self.fee_minor),
                donations::net_minor.eq(self.net_minor),
                donations::charge_id.eq(&self.charge),
            ))
            .execute(cx.donations_table()?)?;
        Ok(())
    }
}

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

impl Op for ApplyStripeEvent {
    type Output = EventOutcome;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<EventOutcome, AppError> {
        if self.fact == Fact::Ignored {
            return Ok(EventOutcome::Ignored);
        }
        let seen = stripe_events::table
            .find(&self.event_id)
            .select(stripe_events::event_id)
            .first::<String>(cx.conn)
            .optional()?;
        if seen.is_some() {
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
    diesel::insert_into(stripe_events::table)
        .values(&StripeEventRow {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            payment_intent_id: e.fact.payment_intent().map(str::to_owned),
            charge_id: e.fact.charge().map(str::to_owned),
            created: e.created,
            received_at: cx.now,
            applied_at: applied.then_some(cx.now),
            fact,
        })
        .execute(cx.conn)?;
    Ok(())
}

/// Applies the events kept for a payment that has just become known, oldest first.
fn apply_kept(cx: &mut Ctx<'_>, pi: Option<&str>, charge: Option<&str>) -> Result<(), AppError> {
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

fn release_reservation(cx: &mut Ctx<'_>, d: &DonationRow) {
    if d.reserved_until.is_some() {
        let r = &mut cx.st.row.reserved_minor;
        *r = (*r - d.amount_minor).max(0);
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
            diesel::update(donations::table.find(d.id))
                .set((
                    donations::status.eq("succeeded"),
                    donations::amount_minor.eq(amount),
                    donations::payment_intent_id.eq(payment_intent),
                    donations::charge_id.eq(charge),
                    donations::succeeded_at.eq(Some(cx.now)),
                    donations::after_close.eq(after_close),
                    donations::reserved_until.eq(None::<NaiveDateTime>),
                ))
                .execute(cx.conn)?;
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
        Fact::Ignored => Ok(()),
    }
}
