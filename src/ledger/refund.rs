//! Refunds recorded in the ledger. Refunds lower raised and never reopen intake.

use diesel::prelude::*;
use serde::Serialize;

use super::{Ctx, Op};
use crate::db::models::DonationRow;
use crate::db::schema::donations;
use crate::error::{AppError, ErrorCode};
use crate::money::Money;

/// Records money returned to a donor: a manual refund of an offline gift, or (later) the
/// amount Stripe reports as refunded.
#[derive(Debug)]
pub struct RecordRefund {
    /// Donation refunded.
    pub donation_id: i64,
    /// Amount to refund, minor units; `None` refunds all that is left.
    pub amount_minor: Option<i64>,
    /// Why (kept in the ledger memo and the audit log).
    pub reason: String,
    /// Who did it.
    pub actor: String,
}

/// A refund's money went back to the donor.
pub const REFUND_SUCCEEDED: &str = "succeeded";
/// Stripe made the refund and finishes it later (bank debit, Alipay, WeChat Pay): raised is
/// lowered when Stripe says it succeeded; if it fails, nothing is lowered and the admins are
/// emailed.
pub const REFUND_PENDING: &str = "pending";

/// What a refund left.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundOutcome {
    /// Donation refunded.
    pub donation_id: i64,
    /// `succeeded`, or `pending` (answered 202) while Stripe finishes a refund on a method
    /// whose refunds settle later; `refunded` is then what will be refunded.
    #[schema(value_type = String, example = "succeeded")]
    pub status: &'static str,
    /// Refunded by this call.
    pub refunded: Money,
    /// Refunded in all, for this donation.
    pub refunded_total: Money,
    /// Still refundable.
    pub refundable: Money,
    /// Raised after the refund.
    pub raised: Money,
}

impl Op for RecordRefund {
    type Output = RefundOutcome;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<RefundOutcome, AppError> {
        let c = cx.st.currency;
        let d: DonationRow = donations::table
            .find(self.donation_id)
            .select(DonationRow::as_select())
            .get_result(cx.donations_table()?)
            .optional()?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::NotFound,
                    format!("no donation {}", self.donation_id),
                )
            })?;
        refundable_status(&d)?;
        let refundable = d.amount_minor - d.refunded_minor - d.disputed_minor;
        let amount = self.amount_minor.unwrap_or(refundable);
        if amount <= 0 || amount > refundable {
            return Err(AppError {
                code: ErrorCode::RefundExceedsRemaining,
                detail: format!("at most {} can still be refunded", c.format(refundable)),
                extra: Some(serde_json::json!({ "refundable": c.format(refundable) })),
            });
        }
        diesel::update(donations::table.find(d.id))
            .set(donations::refunded_minor.eq(d.refunded_minor + amount))
            .execute(cx.conn()?)?;
        // A donation whose whole amount went back no longer counts as a donation.
        let count_delta = if amount == refundable { -1 } else { 0 };
        let memo = format!("refund by {}: {}", self.actor, self.reason);
        let entry = cx.append_entry("refund", Some(d.id), -amount, count_delta, &memo)?;
        if d.email.is_some() {
            let payload = serde_json::json!({
                "donation_id": d.id,
                "amount": c.format(amount),
                "currency": c.code(),
                "reason": self.reason,
                "ledger_hash": entry.hash,
            });
            cx.queue_email(
                "refund",
                &format!("refund:{}:{}", d.id, entry.seq),
                Some(d.id),
                &d.locale,
                &payload,
            )?;
        }
        cx.audit(
            &self.actor,
            "donation.refund",
            &serde_json::json!({ "donation_id": d.id, "amount": c.format(amount), "reason": self.reason }),
        )?;
        Ok(RefundOutcome {
            donation_id: d.id,
            status: REFUND_SUCCEEDED,
            refunded: Money::new(amount, c),
            refunded_total: Money::new(d.refunded_minor + amount, c),
            refundable: Money::new(refundable - amount, c),
            raised: Money::new(cx.st.row.raised_minor, c),
        })
    }
}

/// Only a gift whose money arrived can be refunded.
pub(super) fn refundable_status(d: &DonationRow) -> Result<(), AppError> {
    if d.status == "succeeded" {
        return Ok(());
    }
    Err(AppError::new(
        ErrorCode::InvalidRequest,
        format!(
            "donation {} is {}; only succeeded donations can be refunded",
            d.id, d.status
        ),
    ))
}

/// A refund through Stripe must be asked within its payment method's refund window (Alipay
/// 90 days, WeChat Pay and bank debits 180): past it Stripe would refuse, so it is refused
/// here, before Stripe is called, with the way that remains (a check, recorded with
/// `outside_stripe`).
pub(super) fn within_refund_window(cx: &Ctx<'_>, d: &DonationRow) -> Result<(), AppError> {
    let (Some(method), Some(paid)) = (d.payment_method_type.as_deref(), d.succeeded_at) else {
        return Ok(());
    };
    let Some(days) = crate::domain::payment_methods::refund_window_days(method) else {
        return Ok(());
    };
    let closed = paid + chrono::TimeDelta::days(days);
    if cx.now <= closed {
        return Ok(());
    }
    Err(AppError {
        code: ErrorCode::RefundWindowPassed,
        detail: format!(
            "{method} payments can be refunded through Stripe for {days} days; this one was \
             paid on {}. Refund the donor by check and record it with \"outside_stripe\": true",
            paid.date()
        ),
        extra: Some(serde_json::json!({
            "method": method, "window_days": days,
            "window_closed_at": closed.and_utc().to_rfc3339(),
            "suggestion": "refund by check, then record it with outside_stripe",
        })),
    })
}
