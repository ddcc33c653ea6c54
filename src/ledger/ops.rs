//! The writer's commands. Inputs arrive already parsed (amounts checked, strings trimmed);
//! these functions only apply them.

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;

pub use super::admin::{PeriodInput, SavePeriod, SetIntake, UpdateFund};
use super::{Ctx, Op};
use crate::db::models::{IdempotencyRow, NewDonation};
use crate::db::schema::idempotency_keys;
use crate::domain::IntakeState;
use crate::error::{AppError, ErrorCode};
use crate::money::{DonationAmount, Money};

/// The outbox key of a donation's receipt: one receipt per donation (the key is unique, so a
/// repeated event never queues a second one).
pub fn receipt_key(donation_id: i64) -> String {
    format!("receipt:{donation_id}")
}

/// How an offline gift arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineMethod {
    /// Paper check.
    Check,
    /// Bank wire.
    Wire,
    /// Cash.
    Cash,
    /// Anything else (money order, ...).
    Other,
}

impl OfflineMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineMethod::Check => "check",
            OfflineMethod::Wire => "wire",
            OfflineMethod::Cash => "cash",
            OfflineMethod::Other => "other",
        }
    }
}

/// A checked offline gift.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineGift {
    /// Amount (positive, at most the maximum).
    #[serde(skip)]
    pub amount: DonationAmount,
    /// Amount in minor units, for the idempotency fingerprint.
    pub amount_minor: i64,
    /// Donor's name as it goes on the receipt.
    pub donor_name: String,
    /// Where the receipt goes, if known.
    pub email: Option<String>,
    /// Check, wire, cash, other.
    pub method: OfflineMethod,
    /// Check number or wire reference.
    pub reference: Option<String>,
    /// When the money arrived.
    pub received_on: NaiveDate,
    /// Not shown publicly by name.
    pub anonymous: bool,
    /// Receipt language.
    pub locale: String,
}

/// A remembered response: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// An `Idempotency-Key` with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Scope and key, e.g. `offline:abc`.
    pub scope_key: String,
    /// SHA-256 of the parsed request.
    pub request_hash: String,
}

impl Idempotency {
    /// The row stored under this key by the same request, if any; 409
    /// `idempotency_conflict` when the key was used with another request.
    pub(super) fn stored(&self, cx: &mut Ctx<'_>) -> Result<Option<IdempotencyRow>, AppError> {
        let found = idempotency_keys::table
            .find(&self.scope_key)
            .select(IdempotencyRow::as_select())
            .get_result(cx.conn()?)
            .optional()?;
        match found {
            Some(row) if row.request_hash != self.request_hash => Err(AppError::new(
                ErrorCode::IdempotencyConflict,
                "this Idempotency-Key was already used with a different request",
            )),
            found => Ok(found),
        }
    }
}

/// Looks up a key: the stored response for the same request, a conflict for another.
pub(super) fn replay(
    cx: &mut Ctx<'_>,
    idem: &Idempotency,
) -> Result<Option<StoredResponse>, AppError> {
    Ok(idem.stored(cx)?.map(|row| StoredResponse {
        status: u16::try_from(row.status_code).unwrap_or(200),
        body: row.response_body,
    }))
}

pub(super) fn remember(
    cx: &mut Ctx<'_>,
    idem: &Idempotency,
    resp: &StoredResponse,
) -> Result<(), AppError> {
    diesel::insert_into(idempotency_keys::table)
        .values(&IdempotencyRow {
            scope_key: idem.scope_key.clone(),
            request_hash: idem.request_hash.clone(),
            status_code: i32::from(resp.status),
            response_body: resp.body.clone(),
            created_at: cx.now,
            donation_id: None,
        })
        .execute(cx.conn()?)?;
    Ok(())
}

/// The JSON answer describing a recorded donation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DonationReceipt {
    /// Donation id.
    pub donation_id: i64,
    /// Status (`succeeded` for offline gifts).
    #[schema(schema_with = crate::api_schema::donation_status)]
    pub status: &'static str,
    /// Method.
    #[schema(schema_with = crate::api_schema::donation_method)]
    pub method: &'static str,
    /// Amount.
    pub amount: Money,
    /// Currency.
    pub currency: &'static str,
    /// Donor name.
    pub donor_name: String,
    /// Date received.
    pub received_on: NaiveDate,
    /// Recorded while intake was closed.
    pub after_close: bool,
    /// Hash of the ledger entry that recorded it.
    pub ledger_hash: String,
    /// Raised after this gift.
    pub raised: Money,
    /// Intake state after this gift.
    pub intake: IntakeState,
}

/// Records an offline gift (check, wire, cash): money that has already arrived, so it is
/// taken whatever the intake state.
#[derive(Debug)]
pub struct RecordOffline {
    /// The gift.
    pub gift: OfflineGift,
    /// Treasurer recording it.
    pub actor: String,
    /// Idempotency key, if the client sent one.
    pub idempotency: Option<Idempotency>,
}

impl Op for RecordOffline {
    type Output = StoredResponse;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<StoredResponse, AppError> {
        if let Some(idem) = &self.idempotency
            && let Some(previous) = replay(cx, idem)?
        {
            return Ok(previous);
        }
        let g = &self.gift;
        let c = cx.st.currency;
        let after_close = cx.st.intake() == IntakeState::Closed;
        let id = cx.insert_donation(NewDonation {
            id: 0,
            method: g.method.as_str().to_owned(),
            status: "succeeded".to_owned(),
            amount_minor: g.amount.minor(),
            currency: c.code().to_owned(),
            donor_name: g.donor_name.clone(),
            email: g.email.clone(),
            anonymous: g.anonymous,
            locale: g.locale.clone(),
            reference: g.reference.clone(),
            received_on: Some(g.received_on),
            payment_intent_id: None,
            after_close,
            recorded_by: Some(self.actor.clone()),
            created_at: cx.now,
            succeeded_at: Some(cx.now),
            reserved_until: None,
            fee_covered_minor: 0,
        });
        let memo = match &g.reference {
            Some(r) => format!("offline {} {r}", g.method.as_str()),
            None => format!("offline {}", g.method.as_str()),
        };
        let entry = cx.append_entry("donation", Some(id), g.amount.minor(), 1, &memo)?;
        if g.email.is_some() {
            let payload = serde_json::json!({
                "donation_id": id,
                "amount": c.format(g.amount.minor()),
                "currency": c.code(),
                "method": g.method.as_str(),
                "received_on": g.received_on,
                "ledger_hash": entry.hash,
                "ledger_seq": entry.seq,
            });
            cx.queue_email("receipt", &receipt_key(id), Some(id), &g.locale, &payload)?;
        }
        cx.audit(
            &self.actor,
            "donation.offline_recorded",
            &serde_json::json!({ "donation_id": id, "amount": c.format(g.amount.minor()), "method": g.method.as_str() }),
        )?;
        cx.settle_intake()?;
        let body = DonationReceipt {
            donation_id: id,
            status: "succeeded",
            method: g.method.as_str(),
            amount: Money::new(g.amount.minor(), c),
            currency: c.code(),
            donor_name: g.donor_name.clone(),
            received_on: g.received_on,
            after_close,
            ledger_hash: entry.hash,
            raised: Money::new(cx.st.row.raised_minor, c),
            intake: cx.st.intake(),
        };
        let resp = StoredResponse {
            status: 201,
            body: serde_json::to_string(&body).map_err(AppError::internal)?,
        };
        if let Some(idem) = &self.idempotency {
            remember(cx, idem, &resp)?;
        }
        Ok(resp)
    }
}

/// Does nothing; the batch it rides in reloads the fund and republishes the snapshot (used
/// when another process changed the database).
#[derive(Debug)]
pub struct Refresh;

impl Op for Refresh {
    type Output = ();

    fn apply(&self, _cx: &mut Ctx<'_>) -> Result<(), AppError> {
        Ok(())
    }
}

/// An email to queue, as the outbox takes it.
#[derive(Debug, Clone)]
pub struct QueuedEmail {
    /// Template kind.
    pub kind: String,
    /// One email per key, ever.
    pub dedupe_key: String,
    /// Language.
    pub locale: String,
    /// Template data (with `to` when no donation names the recipient).
    pub payload: serde_json::Value,
}

/// Queues emails that no ledger change causes (year-end statements).
#[derive(Debug)]
pub struct QueueEmails(pub Vec<QueuedEmail>);

impl Op for QueueEmails {
    type Output = usize;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<usize, AppError> {
        for e in &self.0 {
            cx.queue_email(&e.kind, &e.dedupe_key, None, &e.locale, &e.payload)?;
        }
        Ok(self.0.len())
    }
}

/// Writes an audit record of an action that changes nothing in the ledger (an export).
#[derive(Debug)]
pub struct RecordAudit {
    /// Who.
    pub actor: String,
    /// What, e.g. `report.export`.
    pub action: String,
    /// Details (filters).
    pub detail: serde_json::Value,
}

impl Op for RecordAudit {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        cx.audit(&self.actor, &self.action, &self.detail)
    }
}
