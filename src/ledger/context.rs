//! What a writer command works with: the batch's connection, the fund state, the batch time,
//! and the bookkeeping every command shares (ledger entries, intake, audit, outbox).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::FundState;
use crate::db::DbConn;
use crate::db::models::{LedgerEntryRow, NewAudit, NewOutbox};
use crate::db::schema::{audit_log, ledger_entries, outbox};
use crate::domain::{EntryFields, IntakeState, entry_hash};
use crate::error::AppError;

/// A command's view of the batch it runs in.
pub struct Ctx<'a> {
    /// The writer's connection, inside the batch transaction (and the command's savepoint).
    pub conn: &'a mut DbConn,
    /// The fund as of this point in the batch.
    pub st: &'a mut FundState,
    /// The batch's timestamp.
    pub now: NaiveDateTime,
}

impl Ctx<'_> {
    /// Runs `f` in a savepoint; on error the database and the in-memory state roll back
    /// together, so the batch's other commands are unaffected.
    pub(crate) fn savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let backup = self.st.clone();
        let now = self.now;
        let st = &mut *self.st;
        let result = self
            .conn
            .transaction::<T, AppError, _>(|conn| f(&mut Ctx { conn, st, now }));
        if result.is_err() {
            *self.st = backup;
        }
        result
    }

    /// Appends a hash-chained ledger entry that moves raised by `amount_minor` and the donation
    /// count by `count_delta`, and updates the running totals.
    pub fn append_entry(
        &mut self,
        kind: &str,
        donation_id: Option<i64>,
        amount_minor: i64,
        count_delta: i64,
        memo: &str,
    ) -> Result<LedgerEntryRow, AppError> {
        let row = &mut self.st.row;
        let raised_after = row
            .raised_minor
            .checked_add(amount_minor)
            .ok_or_else(|| AppError::internal("raised overflowed"))?;
        let seq = row.ledger_seq + 1;
        let fields = EntryFields {
            seq,
            created_at: self.now,
            kind,
            donation_id,
            amount_minor,
            count_delta,
            raised_after_minor: raised_after,
            target_after_minor: row.target_minor,
            intake_after: &row.intake_state,
            memo,
        };
        let hash = entry_hash(&row.ledger_head, &fields);
        let entry = LedgerEntryRow {
            seq,
            created_at: self.now,
            kind: kind.to_owned(),
            donation_id,
            amount_minor,
            count_delta,
            raised_after_minor: raised_after,
            target_after_minor: row.target_minor,
            intake_after: row.intake_state.clone(),
            memo: memo.to_owned(),
            prev_hash: row.ledger_head.clone(),
            hash: hash.clone(),
        };
        diesel::insert_into(ledger_entries::table)
            .values(&entry)
            .execute(self.conn)?;
        row.raised_minor = raised_after;
        row.donation_count += count_delta;
        row.ledger_seq = seq;
        row.ledger_head = hash;
        Ok(entry)
    }

    /// Changes the intake state (with its public message) and records the change in the
    /// ledger. No-op apart from the message when the state is unchanged.
    pub fn set_intake(
        &mut self,
        to: IntakeState,
        message: &str,
        why: &str,
    ) -> Result<(), AppError> {
        let from = self.st.intake();
        self.st.row.intake_message = message.to_owned();
        if from == to {
            return Ok(());
        }
        self.st.row.intake_state = to.as_str().to_owned();
        self.st.row.intake_changed_at = self.now;
        self.append_entry(
            "intake",
            None,
            0,
            0,
            &format!("{} -> {}: {why}", from.as_str(), to.as_str()),
        )?;
        if to == IntakeState::Closed {
            self.queue_intake_closed()?;
        }
        Ok(())
    }

    /// Re-evaluates intake after raised or the target changed: reaching the target closes
    /// intake in this same transaction.
    pub fn settle_intake(&mut self) -> Result<(), AppError> {
        let row = &self.st.row;
        let from = self.st.intake();
        let to = from.after_totals(row.raised_minor, row.target_minor);
        if to != from {
            let message = self.st.row.intake_message.clone();
            self.set_intake(to, &message, "target reached")?;
        }
        Ok(())
    }

    fn queue_intake_closed(&mut self) -> Result<(), AppError> {
        let row = &self.st.row;
        let c = self.st.currency;
        let alloc = self.st.allocation();
        let periods: Vec<_> = self
            .st
            .periods
            .iter()
            .map(|p| {
                serde_json::json!({
                    "label": p.label,
                    "budget": c.format(p.budget_minor),
                    "covered": c.format(alloc.covered_of(p.id)),
                })
            })
            .collect();
        let payload = serde_json::json!({
            "fund": row.name,
            "currency": c.code(),
            "target": c.format(row.target_minor),
            "raised": c.format(row.raised_minor),
            "donation_count": row.donation_count,
            "unallocated": c.format(alloc.unallocated_minor),
            "periods": periods,
            "closed_at": self.now.and_utc().to_rfc3339(),
        });
        let key = format!("intake_closed:{}", row.ledger_seq);
        self.queue_email("intake_closed", &key, None, "en", &payload)
    }

    /// Queues an email in the outbox, in this transaction; a second row with the same
    /// `dedupe_key` is ignored, so repeated events never queue a second email.
    pub fn queue_email(
        &mut self,
        kind: &str,
        dedupe_key: &str,
        donation_id: Option<i64>,
        locale: &str,
        payload: &serde_json::Value,
    ) -> Result<(), AppError> {
        let payload = payload.to_string();
        let row = NewOutbox {
            kind,
            dedupe_key,
            donation_id,
            locale,
            payload: &payload,
            created_at: self.now,
            next_attempt_at: self.now,
        };
        let q = diesel::insert_into(outbox::table).values(&row);
        match self.conn {
            DbConn::Pg(c) => q.on_conflict_do_nothing().execute(c)?,
            DbConn::Sqlite(c) => q.on_conflict_do_nothing().execute(c)?,
        };
        Ok(())
    }

    /// Writes an audit record of a staff action.
    pub fn audit(
        &mut self,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<(), AppError> {
        let detail = detail.to_string();
        diesel::insert_into(audit_log::table)
            .values(&NewAudit {
                at: self.now,
                actor,
                action,
                detail: &detail,
            })
            .execute(self.conn)?;
        Ok(())
    }
}
