//! What a writer command works with: the batch's connection, the fund state, the batch time,
//! and the bookkeeping every command shares (ledger entries, intake, audit, outbox).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::appended::OutboxRow;
pub use super::appended::{Appended, Succeeded};
use super::{Effect, FundState};
use crate::db::DbConn;
use crate::db::models::{LedgerEntryRow, NewDonation};
use crate::db::schema::users;
use crate::domain::{HASH_VERSION, IntakeState, entry_hash};
use crate::error::AppError;

/// A command's view of the batch it runs in.
pub struct Ctx<'a> {
    /// The writer's connection, inside the batch transaction (and the command's savepoint);
    /// none in a batch that is written in one statement without a transaction. Commands
    /// reach it through `conn`.
    pub(super) conn: Option<&'a mut DbConn>,
    /// The fund as of this point in the batch.
    pub st: &'a mut FundState,
    /// The batch's timestamp.
    pub now: NaiveDateTime,
    /// Append-only rows written at the end of the batch.
    pub appended: &'a mut Appended,
    /// The batch's prefetched reads (fast pass only).
    pub cache: Option<&'a mut super::prefetch::Prefetched>,
}

impl Ctx<'_> {
    /// Runs `f` in a savepoint; on error the database and the in-memory state roll back
    /// together, so the batch's other commands are unaffected.
    pub(crate) fn savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        // Earlier commands' buffered donations go in before the savepoint, so rolling it
        // back can only undo this command's rows.
        let now = self.now;
        let (conn, st, appended) = self.split()?;
        appended.flush_donations(conn)?;
        let backup = st.clone();
        let lens = appended.lens();
        let result = conn.transaction::<T, AppError, _>(|conn| {
            f(&mut Ctx {
                conn: Some(conn),
                st,
                now,
                appended,
                cache: None,
            })
        });
        if result.is_err() {
            *st = backup;
            appended.truncate(lens);
        }
        result
    }

    /// Asks for work to be done once this batch has committed.
    pub fn effect(&mut self, effect: Effect) {
        self.appended.effects.push(effect);
    }

    /// Records a card payment's success on its donation: with the batch's other successes in
    /// the fast pass, at once otherwise.
    pub(crate) fn mark_succeeded(&mut self, s: Succeeded) -> Result<(), AppError> {
        if self.cache.is_some() {
            self.appended.succeeded.push(s);
            return Ok(());
        }
        self.appended.succeeded.push(s);
        let (conn, appended) = self.parts()?;
        appended.flush_succeeded(conn)
    }

    /// Buffers a new donation with the next id; returns the id.
    pub fn insert_donation(&mut self, mut donation: NewDonation) -> i64 {
        let id = self.st.row.last_donation_id + 1;
        self.st.row.last_donation_id = id;
        donation.id = id;
        self.appended.donations.push(donation);
        id
    }

    /// Makes the buffered donations visible to queries; call before reading `donations`.
    pub fn donations_table(&mut self) -> Result<&mut DbConn, AppError> {
        let (conn, appended) = self.parts()?;
        appended.flush_donations(conn)?;
        Ok(conn)
    }

    /// The batch's connection, for what the prefetched reads do not cover. A batch written
    /// in one statement without a transaction has none: asking for it marks the batch to be
    /// run again in a transaction, and fails this command meanwhile.
    pub fn conn(&mut self) -> Result<&mut DbConn, AppError> {
        Ok(self.parts()?.0)
    }

    /// The connection and the buffered rows, borrowed together.
    pub(crate) fn parts(&mut self) -> Result<(&mut DbConn, &mut Appended), AppError> {
        let (conn, _, appended) = self.split()?;
        Ok((conn, appended))
    }

    /// The connection, the fund state and the buffered rows, borrowed together; see `conn`.
    fn split(&mut self) -> Result<(&mut DbConn, &mut FundState, &mut Appended), AppError> {
        match self.conn.as_deref_mut() {
            Some(conn) => Ok((conn, &mut *self.st, &mut *self.appended)),
            None => {
                self.appended.needs_transaction = true;
                Err(AppError::unavailable(
                    "this command needs the batch's transaction",
                ))
            }
        }
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
        self.append_public_entry(kind, donation_id, amount_minor, count_delta, 0, memo, "")
    }

    /// Appends an entry that also moves the money paid out by `disbursed_delta` and says
    /// `public_memo` on the public ledger (hash version 2 covers both).
    #[allow(clippy::too_many_arguments)]
    pub fn append_public_entry(
        &mut self,
        kind: &str,
        donation_id: Option<i64>,
        amount_minor: i64,
        count_delta: i64,
        disbursed_delta: i64,
        memo: &str,
        public_memo: &str,
    ) -> Result<LedgerEntryRow, AppError> {
        let row = &mut self.st.row;
        let raised_after = row
            .raised_minor
            .checked_add(amount_minor)
            .ok_or_else(|| AppError::internal("raised overflowed"))?;
        let disbursed_after = self
            .st
            .disbursed_minor
            .checked_add(disbursed_delta)
            .ok_or_else(|| AppError::internal("disbursed overflowed"))?;
        let seq = row.ledger_seq + 1;
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
            hash: String::new(),
            hash_version: HASH_VERSION,
            disbursed_after_minor: disbursed_after,
            public_memo: public_memo.to_owned(),
        };
        let hash = entry_hash(&row.ledger_head, &entry.fields())
            .ok_or_else(|| AppError::internal("entry hash"))?;
        let entry = LedgerEntryRow {
            hash: hash.clone(),
            ..entry
        };
        self.appended.entries.push(entry.clone());
        self.st.disbursed_minor = disbursed_after;
        self.st.head_at = self.now;
        let row = &mut self.st.row;
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
            self.effect(Effect::CancelOutstanding);
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
            // A pause message no longer describes a fund that closed at its target: clear it,
            // and the page says "closed" in the donor's language.
            self.set_intake(to, "", "target reached")?;
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
        let seq = row.ledger_seq;
        // One row per recipient, each with its own retries and `sent_at`: a recipient the
        // mail server refuses never makes the others get the notice again. Read here (the
        // batch's connection; a batch written without one runs again with it), so the notice
        // goes to whoever is staff when the fund closes.
        let staff: Vec<(i64, String)> = users::table
            .select((users::id, users::email))
            .order(users::id)
            .load(self.conn()?)?;
        if staff.is_empty() {
            tracing::warn!("intake closed, but there is no staff account to tell");
        }
        for (user_id, email) in staff {
            let mut payload = payload.clone();
            payload["to"] = serde_json::Value::String(email);
            let key = format!("intake_closed:{seq}:{user_id}");
            self.queue_email("intake_closed", &key, None, "en", &payload)?;
        }
        Ok(())
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
        if !self.appended.effects.contains(&Effect::MailQueued) {
            self.appended.effects.push(Effect::MailQueued);
        }
        self.appended.outbox.push(OutboxRow {
            kind: kind.to_owned(),
            dedupe_key: dedupe_key.to_owned(),
            donation_id,
            locale: locale.to_owned(),
            payload: payload.to_string(),
            at: self.now,
        });
        Ok(())
    }

    /// Writes an audit record of a staff action.
    pub fn audit(
        &mut self,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<(), AppError> {
        self.appended.audits.push((
            self.now,
            actor.to_owned(),
            action.to_owned(),
            detail.to_string(),
        ));
        Ok(())
    }
}
