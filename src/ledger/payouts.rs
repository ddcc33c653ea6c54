//! Payouts as the ledger keeps them: their state from Stripe's events, and the result of
//! reconciling each against the donations.

use diesel::prelude::*;

use super::{Ctx, Effect, Op};
use crate::db::models::PayoutRow;
use crate::db::schema::{donations, payouts};
use crate::error::AppError;
use crate::ledger::Fact;

/// Records a payout's state (inserting it the first time); a paid payout is reconciled after
/// the commit. `paid`, `failed` and `canceled` are final: a late `pending` does not undo them.
pub fn record_payout(cx: &mut Ctx<'_>, fact: &Fact) -> Result<(), AppError> {
    let Fact::Payout {
        payout,
        amount,
        currency,
        status,
        arrival_date,
        created,
    } = fact
    else {
        return Ok(());
    };
    let existing: Option<String> = payouts::table
        .find(payout)
        .select(payouts::status)
        .get_result(cx.conn()?)
        .optional()?;
    match existing {
        None => {
            diesel::insert_into(payouts::table)
                .values(&PayoutRow {
                    id: payout.clone(),
                    amount_minor: *amount,
                    currency: currency.clone(),
                    status: status.clone(),
                    arrival_date: *arrival_date,
                    created: *created,
                    updated_at: cx.now,
                    reconciled_at: None,
                    matched: 0,
                    missing_in_ledger: 0,
                    missing_in_stripe: 0,
                    differences: 0,
                    report: String::new(),
                })
                .execute(cx.conn()?)?;
        }
        Some(old) if matches!(old.as_str(), "paid" | "failed" | "canceled") => return Ok(()),
        Some(_) => {
            diesel::update(payouts::table.find(payout))
                .set((
                    payouts::status.eq(status),
                    payouts::amount_minor.eq(amount),
                    payouts::arrival_date.eq(arrival_date),
                    payouts::updated_at.eq(cx.now),
                ))
                .execute(cx.conn()?)?;
        }
    }
    if status == "paid" {
        cx.effect(Effect::ReconcilePayout(payout.clone()));
    }
    Ok(())
}

/// The outcome of reconciling one payout.
#[derive(Debug, Clone)]
pub struct SavePayoutReport {
    /// The payout, as Stripe describes it now.
    pub payout: Fact,
    /// Donations whose charge is in the payout and agrees with the ledger.
    pub matched_donations: Vec<i64>,
    /// Counts.
    pub matched: i32,
    /// Stripe transactions with no donation in the ledger.
    pub missing_in_ledger: i32,
    /// Ledger donations Stripe has not paid out.
    pub missing_in_stripe: i32,
    /// Found on both sides with different amounts.
    pub differences: i32,
    /// The lines (JSON).
    pub report: serde_json::Value,
}

impl Op for SavePayoutReport {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let Fact::Payout { payout, .. } = &self.payout else {
            return Ok(());
        };
        let exists = payouts::table
            .find(payout)
            .select(payouts::id)
            .first::<String>(cx.conn()?)
            .optional()?;
        if exists.is_none() {
            record_payout(cx, &self.payout)?;
        }
        diesel::update(payouts::table.find(payout))
            .set((
                payouts::reconciled_at.eq(Some(cx.now)),
                payouts::matched.eq(self.matched),
                payouts::missing_in_ledger.eq(self.missing_in_ledger),
                payouts::missing_in_stripe.eq(self.missing_in_stripe),
                payouts::differences.eq(self.differences),
                payouts::report.eq(self.report.to_string()),
            ))
            .execute(cx.conn()?)?;
        diesel::update(donations::table.filter(donations::id.eq_any(&self.matched_donations)))
            .set(donations::payout_id.eq(Some(payout)))
            .execute(cx.donations_table()?)?;
        cx.audit(
            "stripe",
            "payout.reconciled",
            &serde_json::json!({
                "payout": payout, "matched": self.matched, "missing_in_ledger": self.missing_in_ledger,
                "missing_in_stripe": self.missing_in_stripe, "differences": self.differences,
            }),
        )
    }
}
