//! Card donations: creating the pending donation (with a reservation in strict mode), tying
//! it to its PaymentIntent, and (in `events`) applying Stripe's facts exactly once, in any
//! order.

mod events;
mod facts;
mod refunds;

pub use events::{ApplyStripeEvent, EventOutcome};
pub(crate) use refunds::{RefundUpdate, refund_updated, settles_later};

use diesel::prelude::*;

use super::ops::{Idempotency, StoredResponse};
use super::{Ctx, Op};
use crate::db::models::{DonationRow, IdempotencyRow, NewDonation};
use crate::db::schema::{donations, idempotency_keys};
use crate::domain::{CapMode, IntakeState};
use crate::error::{AppError, ErrorCode};
use crate::money::DonationAmount;

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
    /// The part of `amount` the donor added to cover the processing fee (0: none).
    pub fee_covered_minor: i64,
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
    /// The same request is still being answered: its donation exists and its PaymentIntent
    /// is on its way (the creation outlives the request that started it). The answer appears
    /// under the key when the intent is attached, or the key is freed if the donation is
    /// abandoned.
    InFlight {
        /// The donation the first request created.
        donation_id: i64,
    },
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
            match idem.stored(cx)? {
                // Whoever gives up on the donation (the creating task past its time, the
                // sweep after a crash) deletes it and this key together: while it exists, its
                // creating task may still answer. (A Stripe fact naming it by metadata may
                // already have tied it to its intent; the task's answer is still to come.)
                Some(IdempotencyRow {
                    status_code: 0,
                    donation_id: Some(donation_id),
                    created_at,
                    ..
                }) if created_at > cx.now - self.reservation_ttl
                    && donation_exists(cx, donation_id)? =>
                {
                    return Ok(Created::InFlight { donation_id });
                }
                // A key stored before keys named their donation.
                Some(row)
                    if row.status_code == 0
                        && row.donation_id.is_none()
                        && row.created_at > cx.now - self.reservation_ttl =>
                {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyConflict,
                        "a request with this Idempotency-Key is still in progress; retry shortly",
                    ));
                }
                // Left in progress by a crash long ago: start afresh.
                Some(row) if row.status_code == 0 => {
                    diesel::delete(idempotency_keys::table.find(&row.scope_key))
                        .execute(cx.conn()?)?;
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
            fee_covered_minor: g.fee_covered_minor,
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
                    donation_id: Some(id),
                })
                .execute(cx.conn()?)?;
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
    /// The payment method type, when the intent offers only one (cards, with Link): known
    /// before the charge says it, so refunds never wait for it.
    pub method_type: Option<String>,
}

impl Op for AttachIntent {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let attached = diesel::update(donations::table.find(self.donation_id))
            .set(donations::payment_intent_id.eq(&self.payment_intent))
            .execute(cx.donations_table()?)?;
        if let Some(m) = &self.method_type {
            // The charge's success can come before this answer (through the donation id in
            // the intent's metadata) and name the method more precisely (a wallet, Link).
            presume_method(cx, self.donation_id, m)?;
        }
        if attached == 0 {
            // Abandoned while Stripe was slow (its reservation is already released): the
            // intent must not be handed out, since no donation would record its payment.
            return Err(AppError::new(
                ErrorCode::PaymentProviderError,
                "the card processor answered too late; nothing was charged, please try again",
            ));
        }
        if let Some((key, resp)) = &self.remember {
            diesel::update(idempotency_keys::table.find(key))
                .set((
                    idempotency_keys::status_code.eq(i32::from(resp.status)),
                    idempotency_keys::response_body.eq(&resp.body),
                ))
                .execute(cx.conn()?)?;
        }
        // A succeeded event may have arrived before we knew the intent (kept): apply it now.
        events::apply_kept(cx, Some(&self.payment_intent), None)
    }
}

/// Removes a pending donation whose PaymentIntent could not be created, or did not come in
/// time (nothing was charged), releasing its reservation and its idempotency key (the one
/// given, and any that names the donation) so the donor can retry.
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
            .get_result(conn)
            .optional()?;
        if let Some(d) = d.filter(|d| d.status == "pending" && d.payment_intent_id.is_none()) {
            diesel::delete(donations::table.find(d.id)).execute(cx.conn()?)?;
            release_reservation(cx, &d);
            // Its key, so the donor's retry starts afresh instead of waiting for this one.
            diesel::delete(idempotency_keys::table.filter(idempotency_keys::donation_id.eq(d.id)))
                .execute(cx.conn()?)?;
        }
        if let Some(key) = &self.idempotency_key {
            diesel::delete(idempotency_keys::table.find(key)).execute(cx.conn()?)?;
        }
        Ok(())
    }
}

/// What a charge's balance transaction says: fee, net and amount in the transaction's
/// currency, which is the account's settlement currency, not always the fund's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Stripe's fee, minor units of `currency`.
    pub fee_minor: i64,
    /// Amount less fee, minor units of `currency`.
    pub net_minor: i64,
    /// The charge's amount as settled, minor units of `currency`.
    pub amount_minor: i64,
    /// Upper-case ISO currency of the transaction.
    pub currency: String,
    /// Stripe's `exchange_rate` as written (charge amount × rate = amount), if any.
    pub exchange_rate: Option<String>,
    /// The charge.
    pub charge: String,
    /// How it was paid, as the charge names it, if it does.
    pub method_type: Option<String>,
}

/// Stores fee and net from the charge's balance transaction, with its currency (the
/// account's settlement currency, not always the fund's), amount and exchange rate.
#[derive(Debug)]
pub struct SetFees {
    /// Donation id.
    pub donation_id: i64,
    /// What the balance transaction says.
    pub settlement: Settlement,
}

impl Op for SetFees {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let s = &self.settlement;
        diesel::update(donations::table.find(self.donation_id))
            .set((
                donations::fee_minor.eq(s.fee_minor),
                donations::net_minor.eq(s.net_minor),
                donations::charge_id.eq(&s.charge),
                donations::fee_currency.eq(&s.currency),
                donations::settled_minor.eq(s.amount_minor),
                donations::exchange_rate.eq(&s.exchange_rate),
            ))
            .execute(cx.donations_table()?)?;
        if let Some(m) = &s.method_type {
            diesel::update(donations::table.find(self.donation_id))
                .set(donations::payment_method_type.eq(m))
                .execute(cx.conn()?)?;
        }
        // Refund facts that waited for the charge to be heard of (fee and method unknown).
        events::apply_kept(cx, None, Some(&s.charge))?;
        Ok(())
    }
}

/// Records `method` as the donation's payment method type unless one is recorded already
/// (what a charge names is more precise than what was presumed before it).
pub(crate) fn presume_method(
    cx: &mut Ctx<'_>,
    donation_id: i64,
    method: &str,
) -> Result<(), AppError> {
    diesel::update(donations::table.find(donation_id))
        .filter(donations::payment_method_type.is_null())
        .set(donations::payment_method_type.eq(method))
        .execute(cx.conn()?)?;
    Ok(())
}

/// Whether a donation exists (was not abandoned).
fn donation_exists(cx: &mut Ctx<'_>, donation_id: i64) -> Result<bool, AppError> {
    let found = donations::table
        .find(donation_id)
        .select(donations::id)
        .first::<i64>(cx.donations_table()?)
        .optional()?;
    Ok(found.is_some())
}

/// Gives back a strict-mode reservation held by a donation.
pub(super) fn release_reservation(cx: &mut Ctx<'_>, d: &DonationRow) {
    if d.reserved_until.is_some() {
        let r = &mut cx.st.row.reserved_minor;
        *r = (*r - d.amount_minor).max(0);
    }
}
