//! The public progress figures, kept in memory so `GET /api/fund` does no I/O. The writer
//! replaces the snapshot after each commit.

use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::FundState;
use crate::domain::IntakeState;
use crate::money::Money;

/// `GET /api/fund`'s document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FundView {
    /// Fund name.
    pub name: String,
    /// ISO currency code.
    #[schema(examples("USD"))]
    pub currency: &'static str,
    /// Target.
    pub target: Money,
    /// Succeeded donations minus refunds and lost disputes.
    pub raised: Money,
    /// What is left to reach the target (never negative).
    pub remaining: Money,
    /// Donations counted in raised.
    pub donation_count: i64,
    /// Raised money beyond every period's budget.
    pub unallocated: Money,
    /// Money paid out of the fund (disbursements not voided).
    pub disbursed: Money,
    /// Raised less disbursed: what the fund holds before card fees (the reports have the
    /// fees; the public ledger's `balance_after` is this figure).
    pub balance: Money,
    /// Whether donations are taken.
    pub intake: IntakeView,
    /// Legal-fee periods, oldest first, with their coverage.
    pub periods: Vec<PeriodView>,
}

/// Intake part of [`FundView`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IntakeView {
    /// `open`, `paused` or `closed`.
    pub state: IntakeState,
    /// True when the donation form may be used.
    pub accepting: bool,
    /// Public message of the admins.
    pub message: String,
    /// When the state last changed.
    pub changed_at: DateTime<Utc>,
}

/// A period with its coverage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodView {
    /// Period id.
    pub id: i64,
    /// Label, e.g. "August 2020".
    pub label: String,
    /// First day.
    pub starts_on: NaiveDate,
    /// Last day.
    pub ends_on: NaiveDate,
    /// Fees owed for the period.
    pub budget: Money,
    /// Raised money allocated to it.
    pub covered: Money,
    /// Budget not yet covered.
    pub remaining: Money,
    /// Paid out against the period.
    pub paid: Money,
    /// Covered less paid: raised money allocated to the period and not yet paid out.
    pub balance: Money,
}

impl FundView {
    /// The public view of a fund state.
    pub fn of(st: &FundState) -> FundView {
        let c = st.currency;
        let row = &st.row;
        let alloc = st.allocation();
        let intake = st.intake();
        FundView {
            name: row.name.clone(),
            currency: c.code(),
            target: Money::new(row.target_minor, c),
            raised: Money::new(row.raised_minor, c),
            remaining: Money::new((row.target_minor - row.raised_minor).max(0), c),
            donation_count: row.donation_count,
            unallocated: Money::new(alloc.unallocated_minor, c),
            disbursed: Money::new(st.disbursed_minor, c),
            balance: Money::new(row.raised_minor - st.disbursed_minor, c),
            intake: IntakeView {
                state: intake,
                accepting: intake == IntakeState::Open,
                message: row.intake_message.clone(),
                changed_at: row.intake_changed_at.and_utc(),
            },
            periods: st
                .periods
                .iter()
                .map(|p| {
                    let covered = alloc.covered_of(p.id);
                    let paid = st.paid.get(&p.id).copied().unwrap_or(0);
                    PeriodView {
                        id: p.id,
                        label: p.label.clone(),
                        starts_on: p.starts_on,
                        ends_on: p.ends_on,
                        budget: Money::new(p.budget_minor, c),
                        covered: Money::new(covered, c),
                        remaining: Money::new(p.budget_minor - covered, c),
                        paid: Money::new(paid, c),
                        balance: Money::new(covered - paid, c),
                    }
                })
                .collect(),
        }
    }
}

/// The ledger's head as anyone may see it: naming it names all history before it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicHead {
    /// The last entry's position.
    pub seq: i64,
    /// The last entry's hash.
    pub hash: String,
    /// Raised after it.
    pub raised: Money,
    /// Raised less disbursed after it.
    pub balance: Money,
    /// When it was written.
    pub at: DateTime<Utc>,
}

impl PublicHead {
    fn of(st: &FundState) -> PublicHead {
        let c = st.currency;
        PublicHead {
            seq: st.row.ledger_seq,
            hash: st.row.ledger_head.clone(),
            raised: Money::new(st.row.raised_minor, c),
            balance: Money::new(st.row.raised_minor - st.disbursed_minor, c),
            at: st.head_at.and_utc(),
        }
    }
}

/// One published snapshot: the view, its JSON, and the fund version it reflects.
#[derive(Debug, Clone)]
pub struct FundSnapshot {
    /// Fund row version this snapshot was built from.
    pub version: i64,
    /// Whether intake is open (read by the donation path without parsing JSON).
    pub accepting: bool,
    /// When the fund was created (Unix microseconds): names this deployment to Stripe.
    pub fund_created_micros: i64,
    /// The view.
    pub view: FundView,
    /// The view serialised once.
    pub json: Bytes,
    /// The ledger's head.
    pub head: PublicHead,
    /// `GET /api/public/head`, serialised once.
    pub head_json: Bytes,
}

/// Where the latest snapshot lives; readers clone an `Arc`, the writer swaps it.
#[derive(Debug, Default)]
pub struct SnapshotCell(RwLock<Option<Arc<FundSnapshot>>>);

impl SnapshotCell {
    /// The latest snapshot, if the writer has published one.
    pub fn get(&self) -> Option<Arc<FundSnapshot>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes the state as the new snapshot.
    pub fn publish(&self, st: &FundState) {
        let view = FundView::of(st);
        let json = Bytes::from(serde_json::to_vec(&view).unwrap_or_default());
        let head = PublicHead::of(st);
        let head_json = Bytes::from(serde_json::to_vec(&head).unwrap_or_default());
        let snap = Arc::new(FundSnapshot {
            version: st.row.version,
            accepting: view.intake.accepting,
            fund_created_micros: st.row.created_at.and_utc().timestamp_micros(),
            view,
            json,
            head,
            head_json,
        });
        match self.0.write() {
            Ok(mut g) => *g = Some(snap),
            Err(poisoned) => *poisoned.into_inner() = Some(snap),
        }
    }
}
