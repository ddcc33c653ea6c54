//! Rows as Rust types. Amounts stay in minor units here; `money` converts at the edges.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{
    audit_log, donations, funds, idempotency_keys, ledger_entries, outbox, payouts, periods,
    refund_requests, stripe_events, users,
};

/// The fund row: settings, running totals and the head of the ledger chain.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = funds)]
pub struct FundRow {
    pub id: i64,
    pub name: String,
    pub currency: String,
    pub target_minor: i64,
    pub raised_minor: i64,
    pub donation_count: i64,
    pub reserved_minor: i64,
    pub cap_mode: String,
    pub intake_state: String,
    pub intake_message: String,
    pub intake_changed_at: NaiveDateTime,
    pub ledger_seq: i64,
    pub last_donation_id: i64,
    pub ledger_head: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A legal-fee period.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = periods)]
pub struct PeriodRow {
    pub id: i64,
    pub label: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub budget_minor: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A new period.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = periods)]
pub struct NewPeriod<'a> {
    pub label: &'a str,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub budget_minor: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A donation, card or offline.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = donations)]
pub struct DonationRow {
    pub id: i64,
    pub method: String,
    pub status: String,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    pub disputed_minor: i64,
    pub fee_minor: Option<i64>,
    pub net_minor: Option<i64>,
    pub currency: String,
    pub donor_name: String,
    pub email: Option<String>,
    pub anonymous: bool,
    pub locale: String,
    pub reference: Option<String>,
    pub received_on: Option<NaiveDate>,
    pub payment_intent_id: Option<String>,
    pub after_close: bool,
    pub recorded_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub succeeded_at: Option<NaiveDateTime>,
    pub charge_id: Option<String>,
    pub reserved_until: Option<NaiveDateTime>,
    pub dispute_status: Option<String>,
    pub payout_id: Option<String>,
    /// Lower-case ISO currency of `fee_minor` and `net_minor` (the balance transaction's);
    /// `None` with a fee: recorded before it was kept, taken as the donation's currency.
    pub fee_currency: Option<String>,
    /// The balance transaction's amount, in `fee_currency`.
    pub settled_minor: Option<i64>,
    /// The balance transaction's exchange rate, as Stripe wrote it.
    pub exchange_rate: Option<String>,
    /// Since when the payment's money is on its way (a bank debit in `processing`).
    pub processing_since: Option<NaiveDateTime>,
    /// The part of `amount_minor` the donor added to cover the processing fee.
    pub fee_covered_minor: i64,
    /// How a Stripe payment was made (`card`, `us_bank_account`, `alipay`, `wechat_pay`,
    /// `link`, a card wallet such as `apple_pay`); `None` for offline gifts and until known.
    pub payment_method_type: Option<String>,
}

/// A new donation; its id is assigned by the ledger writer.
///
/// `treat_none_as_default_value = false`: a `None` is written as NULL (the column's default
/// anyway), which lets diesel write a batch as one multi-row INSERT on SQLite too instead of
/// one INSERT per row inside a savepoint.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = donations, treat_none_as_default_value = false)]
pub struct NewDonation {
    pub id: i64,
    pub method: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub donor_name: String,
    pub email: Option<String>,
    pub anonymous: bool,
    pub locale: String,
    pub reference: Option<String>,
    pub received_on: Option<NaiveDate>,
    pub payment_intent_id: Option<String>,
    pub after_close: bool,
    pub recorded_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub succeeded_at: Option<NaiveDateTime>,
    pub reserved_until: Option<NaiveDateTime>,
    pub fee_covered_minor: i64,
}

/// A ledger entry (append-only). Inserted in batches (see [`NewDonation`]).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_entries, treat_none_as_default_value = false)]
pub struct LedgerEntryRow {
    pub seq: i64,
    pub created_at: NaiveDateTime,
    pub kind: String,
    pub donation_id: Option<i64>,
    pub amount_minor: i64,
    pub count_delta: i64,
    pub raised_after_minor: i64,
    pub target_after_minor: i64,
    pub intake_after: String,
    pub memo: String,
    pub prev_hash: String,
    pub hash: String,
    pub hash_version: i32,
    pub disbursed_after_minor: i64,
    pub public_memo: String,
}

impl LedgerEntryRow {
    /// The fields its hash covers, the memo as written.
    pub fn fields(&self) -> crate::domain::EntryFields<'_> {
        crate::domain::EntryFields {
            version: self.hash_version,
            seq: self.seq,
            created_at: self.created_at,
            kind: &self.kind,
            donation_id: self.donation_id,
            amount_minor: self.amount_minor,
            count_delta: self.count_delta,
            raised_after_minor: self.raised_after_minor,
            target_after_minor: self.target_after_minor,
            intake_after: &self.intake_after,
            disbursed_after_minor: self.disbursed_after_minor,
            public_memo: &self.public_memo,
            memo: crate::domain::Memo::Text(&self.memo),
        }
    }
}

/// A staff account.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
    pub totp_secret: Option<String>,
    pub totp_enabled_at: Option<NaiveDateTime>,
    pub totp_last_step: Option<i64>,
}

/// A new staff account.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub created_at: NaiveDateTime,
}

/// A remembered answer to an idempotent request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    pub scope_key: String,
    pub request_hash: String,
    pub status_code: i32,
    pub response_body: String,
    pub created_at: NaiveDateTime,
    /// The card donation a key in progress belongs to (none for offline gifts and keys
    /// stored before it was recorded).
    pub donation_id: Option<i64>,
}

/// A new audit record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAudit<'a> {
    pub at: NaiveDateTime,
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

/// A new outbox row (an email waiting to be sent). Inserted in batches (see [`NewDonation`]).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox, treat_none_as_default_value = false)]
pub struct NewOutbox<'a> {
    pub kind: &'a str,
    pub dedupe_key: &'a str,
    pub donation_id: Option<i64>,
    pub locale: &'a str,
    pub payload: &'a str,
    pub created_at: NaiveDateTime,
    pub next_attempt_at: NaiveDateTime,
}

/// A Stripe event as recorded: applied, or kept until its payment is known.
/// Inserted in batches (see [`NewDonation`]).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_events, treat_none_as_default_value = false)]
pub struct StripeEventRow {
    pub event_id: String,
    pub event_type: String,
    pub payment_intent_id: Option<String>,
    pub charge_id: Option<String>,
    pub created: i64,
    pub received_at: NaiveDateTime,
    pub applied_at: Option<NaiveDateTime>,
    pub fact: String,
}

/// An email in the outbox.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: String,
    pub donation_id: Option<i64>,
    pub locale: String,
    pub payload: String,
    pub created_at: NaiveDateTime,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub claim_token: Option<String>,
    pub failed_at: Option<NaiveDateTime>,
}

/// A Stripe payout and the result of its last reconciliation.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = payouts)]
pub struct PayoutRow {
    pub id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub arrival_date: Option<i64>,
    pub created: i64,
    pub updated_at: NaiveDateTime,
    pub reconciled_at: Option<NaiveDateTime>,
    pub matched: i32,
    pub missing_in_ledger: i32,
    pub missing_in_stripe: i32,
    pub differences: i32,
    pub report: String,
}

/// A refund asked of the admin route (`requested` until Stripe's answer is recorded).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refund_requests)]
pub struct RefundRequestRow {
    pub id: i64,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub donation_id: i64,
    pub amount_minor: i64,
    pub actor: String,
    pub reason: String,
    pub state: String,
    pub stripe_refund_id: Option<String>,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub approved_by: Option<String>,
    /// Recorded as money returned outside Stripe (a check), never asked of Stripe.
    pub outside_stripe: bool,
}

/// A new refund request (its id comes from the database).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refund_requests)]
pub struct NewRefundRequest<'a> {
    pub idempotency_key: Option<&'a str>,
    pub request_hash: &'a str,
    pub donation_id: i64,
    pub amount_minor: i64,
    pub actor: &'a str,
    pub reason: &'a str,
    pub state: &'a str,
    pub stripe_refund_id: Option<&'a str>,
    pub outside_stripe: bool,
    pub status_code: Option<i32>,
    pub response_body: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}
