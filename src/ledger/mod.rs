//! The single writer: every change of money or intake is a command applied by one thread
//! that owns one connection, in batches, one transaction and one commit per batch.
//!
//! One writer makes the target check and the auto-close race-free by construction; batching
//! gives group commit. Each command runs inside its own savepoint so a failing command never
//! fails its neighbours. Callers are answered only after the batch committed.

mod admin;
mod appended;
pub mod approvals;
mod bootstrap;
mod cached;
pub mod card;
mod checkpoint;
mod context;
pub mod disbursements;
pub mod erase;
mod fact;
pub mod ops;
pub mod payouts;
mod pg_write;
pub mod prefetch;
pub mod refund;
pub mod refund_requests;
pub mod resend;
mod snapshot;
mod state;
pub mod verify;
pub mod watch;
mod writer;

pub use context::Ctx;
pub use fact::Fact;

/// Work the writer hands on after a commit (it never calls out of the process itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Intake closed: cancel every PaymentIntent still open.
    CancelOutstanding,
    /// Emails were queued: wake the mailer.
    MailQueued,
    /// A payout was paid: reconcile it against the ledger.
    ReconcilePayout(String),
    /// A card payment succeeded: fetch its fee and net.
    FetchFees {
        /// Donation id.
        donation_id: i64,
        /// `pi_...`.
        payment_intent: String,
        /// The charge, if known.
        charge: Option<String>,
    },
}
pub use crate::config::BatchTuning;
pub use snapshot::{FundSnapshot, FundView, IntakeView, PeriodView, PublicHead, SnapshotCell};
pub use state::{FundState, adopt_stored_fund, entries_after, stored_fund};
pub use writer::{LedgerWriter, Op, WriterHistograms, WriterStats};
