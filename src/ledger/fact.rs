//! What a payment provider's event means for the ledger, whoever parsed it: a Stripe webhook
//! (`payments::events`), `reconcile`, a cancel result, an admin's refund. The ledger acts on
//! these and knows nothing of where they came from.

use serde::{Deserialize, Serialize};

/// What an event tells the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// The payment went through.
    PaymentSucceeded {
        /// PaymentIntent id.
        payment_intent: String,
        /// Amount received, minor units.
        amount: i64,
        /// Lower-case ISO currency.
        currency: String,
        /// Charge id, if known.
        charge: Option<String>,
        /// Our donation id from the metadata.
        donation_id: Option<i64>,
    },
    /// The money is on its way (a bank debit: up to 4 business days), not received yet.
    PaymentProcessing {
        /// PaymentIntent id.
        payment_intent: String,
        /// Our donation id from the metadata.
        donation_id: Option<i64>,
    },
    /// An attempt failed (the donor may try again on the same intent).
    PaymentFailed {
        /// PaymentIntent id.
        payment_intent: String,
        /// Our donation id from the metadata.
        donation_id: Option<i64>,
    },
    /// The intent was canceled.
    PaymentCanceled {
        /// PaymentIntent id.
        payment_intent: String,
        /// Our donation id from the metadata.
        donation_id: Option<i64>,
    },
    /// Money went back; `amount_refunded` is cumulative.
    ChargeRefunded {
        /// PaymentIntent id, if the charge names it.
        payment_intent: Option<String>,
        /// Charge id.
        charge: String,
        /// Total refunded so far, minor units.
        amount_refunded: i64,
    },
    /// How a payment is made, as its charge names it (`charge.succeeded`, `charge.pending`).
    PaymentMethod {
        /// PaymentIntent id.
        payment_intent: String,
        /// Charge id.
        charge: String,
        /// The type to record ([`crate::domain::payment_methods::recorded_type`]).
        method_type: String,
    },
    /// A refund Stripe made or finished (`refund.created`, `refund.updated`, `refund.failed`,
    /// `charge.refund.updated`). For methods whose refunds settle later, the refund lowers
    /// raised only when this says `succeeded`.
    RefundUpdated {
        /// `re_...`.
        refund: String,
        /// PaymentIntent id, if named.
        payment_intent: Option<String>,
        /// Charge id, if named.
        charge: Option<String>,
        /// Amount, minor units.
        amount: i64,
        /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
        status: String,
        /// Our refund request named in its metadata, if ours.
        request_id: Option<i64>,
        /// Stripe's `failure_reason`, if it failed.
        failure_reason: Option<String>,
    },
    /// A dispute withdrew funds.
    DisputeOpened {
        /// Dispute id.
        dispute: String,
        /// PaymentIntent id, if named.
        payment_intent: Option<String>,
        /// Charge id.
        charge: String,
        /// Disputed amount, minor units.
        amount: i64,
    },
    /// A dispute ended.
    DisputeClosed {
        /// Dispute id.
        dispute: String,
        /// PaymentIntent id, if named.
        payment_intent: Option<String>,
        /// Charge id.
        charge: String,
        /// Disputed amount, minor units.
        amount: i64,
        /// True if the association won (funds reinstated).
        won: bool,
    },
    /// A payout to the bank was created or changed state.
    Payout {
        /// `po_...`.
        payout: String,
        /// Amount, minor units.
        amount: i64,
        /// Lower-case ISO currency.
        currency: String,
        /// `pending`, `in_transit`, `paid`, `failed`, `canceled`.
        status: String,
        /// Expected arrival (Unix seconds).
        arrival_date: Option<i64>,
        /// When Stripe created it (Unix seconds).
        created: i64,
    },
    /// Not credited: an event of another Stripe account or mode (decided from the event
    /// before it reaches the writer), or a payment that names one of our donations in its
    /// metadata with another amount or currency. Stored with what it said, never applied.
    Foreign {
        /// Why, in words, for the treasurer reading the record.
        reason: String,
        /// What the event said.
        said: Box<Fact>,
    },
    /// An event type crowdledger does not act on.
    Ignored,
}

impl Fact {
    /// The PaymentIntent the fact is about, if it says.
    pub fn payment_intent(&self) -> Option<&str> {
        match self {
            Fact::PaymentSucceeded { payment_intent, .. }
            | Fact::PaymentProcessing { payment_intent, .. }
            | Fact::PaymentFailed { payment_intent, .. }
            | Fact::PaymentCanceled { payment_intent, .. }
            | Fact::PaymentMethod { payment_intent, .. } => Some(payment_intent),
            Fact::ChargeRefunded { payment_intent, .. }
            | Fact::RefundUpdated { payment_intent, .. }
            | Fact::DisputeOpened { payment_intent, .. }
            | Fact::DisputeClosed { payment_intent, .. } => payment_intent.as_deref(),
            Fact::Payout { .. } | Fact::Foreign { .. } | Fact::Ignored => None,
        }
    }

    /// The charge the fact is about, if it says.
    pub fn charge(&self) -> Option<&str> {
        match self {
            Fact::PaymentSucceeded { charge, .. } | Fact::RefundUpdated { charge, .. } => {
                charge.as_deref()
            }
            Fact::PaymentMethod { charge, .. }
            | Fact::ChargeRefunded { charge, .. }
            | Fact::DisputeOpened { charge, .. }
            | Fact::DisputeClosed { charge, .. } => Some(charge),
            _ => None,
        }
    }
}
