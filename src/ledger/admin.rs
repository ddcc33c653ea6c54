//! The admins' commands: the intake switch, the fund's name and target, legal-fee periods.

use chrono::NaiveDate;
use diesel::prelude::*;

use super::{Ctx, Op};
use crate::db::models::{NewPeriod, PeriodRow};
use crate::db::schema::periods;
use crate::domain::{CapMode, IntakeState};
use crate::error::{AppError, ErrorCode};

/// An admin switches intake on or off, with a public message.
#[derive(Debug)]
pub struct SetIntake {
    /// True to open, false to pause.
    pub accepting: bool,
    /// Public message shown on the page.
    pub message: String,
    /// Admin doing it.
    pub actor: String,
}

impl Op for SetIntake {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let row = &cx.st.row;
        let to = if self.accepting {
            if row.raised_minor >= row.target_minor {
                return Err(AppError::new(
                    ErrorCode::TargetReached,
                    "raised has reached the target; raise the target before reopening intake",
                ));
            }
            IntakeState::Open
        } else if cx.st.intake() == IntakeState::Closed {
            // Closed stays closed (it says more than paused); only the message changes.
            IntakeState::Closed
        } else {
            IntakeState::Paused
        };
        let why = format!("set by {}", self.actor);
        cx.set_intake(to, &self.message, &why)?;
        cx.audit(
            &self.actor,
            "intake.set",
            &serde_json::json!({ "accepting": self.accepting, "message": self.message, "state": to.as_str() }),
        )
    }
}

/// An admin renames the fund or changes its target.
#[derive(Debug)]
pub struct UpdateFund {
    /// New name.
    pub name: Option<String>,
    /// New target, minor units (positive).
    pub target_minor: Option<i64>,
    /// Admin doing it.
    pub actor: String,
}

impl Op for UpdateFund {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let c = cx.st.currency;
        let before = (cx.st.row.name.clone(), cx.st.row.target_minor);
        if let Some(name) = &self.name {
            cx.st.row.name.clone_from(name);
        }
        if let Some(target) = self.target_minor
            && target != cx.st.row.target_minor
        {
            // In strict mode every reservation is a payment that may still succeed: a target
            // below raised + reserved would let raised pass it. Cancelling reservations here
            // would race donors confirming at Stripe, so the change is refused instead; the
            // reservations end within RESERVATION_TTL (or when their payments finish).
            let row = &cx.st.row;
            let floor = row.raised_minor + row.reserved_minor;
            if cx.st.cap_mode() == CapMode::Strict && row.reserved_minor > 0 && target < floor {
                return Err(AppError {
                    code: ErrorCode::TargetBelowReserved,
                    detail: format!(
                        "payments under way reserve {}; the target can be lowered to {} now, or further once they finish",
                        c.format(row.reserved_minor),
                        c.format(floor)
                    ),
                    extra: Some(serde_json::json!({
                        "reserved": c.format(row.reserved_minor),
                        "minimum": c.format(floor),
                    })),
                });
            }
            cx.st.row.target_minor = target;
            let memo = format!(
                "target {} -> {} by {}",
                c.format(before.1),
                c.format(target),
                self.actor
            );
            cx.append_entry("target", None, 0, 0, &memo)?;
            cx.settle_intake()?;
        }
        cx.audit(
            &self.actor,
            "fund.update",
            &serde_json::json!({
                "name": { "from": before.0, "to": cx.st.row.name },
                "target": { "from": c.format(before.1), "to": c.format(cx.st.row.target_minor) },
            }),
        )
    }
}

/// A checked legal-fee period.
#[derive(Debug, Clone)]
pub struct PeriodInput {
    /// Label, e.g. "August 2020".
    pub label: String,
    /// First day.
    pub starts_on: NaiveDate,
    /// Last day (not before the first).
    pub ends_on: NaiveDate,
    /// Fees owed, minor units (positive).
    pub budget_minor: i64,
}

/// Adds a period (or, with `id`, replaces one's fields).
#[derive(Debug)]
pub struct SavePeriod {
    /// Existing period to change; `None` adds one.
    pub id: Option<i64>,
    /// Its fields.
    pub period: PeriodInput,
    /// Admin doing it.
    pub actor: String,
}

impl Op for SavePeriod {
    type Output = PeriodRow;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<PeriodRow, AppError> {
        let p = &self.period;
        let values = NewPeriod {
            label: &p.label,
            starts_on: p.starts_on,
            ends_on: p.ends_on,
            budget_minor: p.budget_minor,
            created_at: cx.now,
            updated_at: cx.now,
        };
        let row: PeriodRow = match self.id {
            None => diesel::insert_into(periods::table)
                .values(&values)
                .returning(periods::all_columns)
                .get_result(cx.conn()?)?,
            Some(id) => diesel::update(periods::table.find(id))
                .set((
                    periods::label.eq(&p.label),
                    periods::starts_on.eq(p.starts_on),
                    periods::ends_on.eq(p.ends_on),
                    periods::budget_minor.eq(p.budget_minor),
                    periods::updated_at.eq(cx.now),
                ))
                .returning(periods::all_columns)
                .get_result(cx.conn()?)
                .optional()?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no period {id}")))?,
        };
        // The allocation moves with a period's dates and budget: the change is in the chain,
        // on the public ledger, not only in the audit trail.
        let public = serde_json::json!({
            "budget": cx.st.currency.format(row.budget_minor),
            "ends_on": row.ends_on,
            "id": row.id,
            "label": row.label,
            "starts_on": row.starts_on,
        })
        .to_string();
        let memo = format!("period {} by {}", row.id, self.actor);
        cx.append_public_entry("period", None, 0, 0, 0, &memo, &public)?;
        cx.st.periods.retain(|q| q.id != row.id);
        cx.st.periods.push(row.clone());
        cx.st.periods.sort_by_key(|q| (q.starts_on, q.id));
        let c = cx.st.currency;
        cx.audit(
            &self.actor,
            if self.id.is_some() {
                "period.update"
            } else {
                "period.add"
            },
            &serde_json::json!({
                "id": row.id, "label": row.label, "starts_on": row.starts_on,
                "ends_on": row.ends_on, "budget": c.format(row.budget_minor),
            }),
        )?;
        Ok(row)
    }
}
