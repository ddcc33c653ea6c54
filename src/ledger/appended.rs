//! The rows a batch only appends (ledger entries, audit, outbox, Stripe events) and the
//! writes it can group (new donations, card successes): kept in memory while the batch's
//! commands run and written together before the commit: on PostgreSQL in one statement
//! (`pg_write`), on SQLite one prepared single-row statement per row (`insert_rows!`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Effect;
use super::cached::MarkSucceeded;
use super::pg_write::BatchWrite;
use super::state::{FundState, persist};
use crate::db::DbConn;
use crate::db::models::{LedgerEntryRow, NewAudit, NewDonation, NewOutbox, StripeEventRow};
use crate::db::schema::{audit_log, donations, ledger_entries, outbox, stripe_events};
use crate::error::AppError;

/// Most rows one multi-row INSERT carries (PostgreSQL allows 65,535 parameters).
const INSERT_CHUNK: usize = 1_000;

/// Inserts `rows` into `table`: on PostgreSQL with multi-row statements (one round trip per
/// chunk), on SQLite with one single-row statement each, whose fixed text diesel prepares
/// once per connection (see `cached`); `$conflict` is an optional `on_conflict_do_nothing`.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr $(, $conflict:ident)?) => {
        match $conn {
            DbConn::Pg(c) => {
                for chunk in $rows.chunks(INSERT_CHUNK) {
                    diesel::insert_into($table).values(chunk)$(.$conflict())?.execute(c)?;
                }
            }
            DbConn::Sqlite(c) => {
                for row in $rows.iter() {
                    diesel::insert_into($table).values(row)$(.$conflict())?.execute(c)?;
                }
            }
        }
    };
}

/// Append-only rows a batch writes: nothing in a batch reads them back, so they are kept in
/// memory and written just before the commit (see the module's comment).
#[derive(Debug, Default)]
pub struct Appended {
    /// Work for after the commit (cancel intents, fetch fees).
    pub(crate) effects: Vec<Effect>,
    pub(crate) donations: Vec<NewDonation>,
    pub(crate) succeeded: Vec<Succeeded>,
    pub(crate) events: Vec<StripeEventRow>,
    pub(crate) entries: Vec<LedgerEntryRow>,
    pub(crate) audits: Vec<(NaiveDateTime, String, String, String)>,
    pub(crate) outbox: Vec<OutboxRow>,
    /// A command asked for the connection in a batch run without a transaction.
    pub(crate) needs_transaction: bool,
}

/// What a batch's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Every row, and the fund row.
    Whole,
    /// Nothing: the fund row's version was not the one the batch started from (another
    /// instance wrote in between). PostgreSQL only.
    Stale,
}

#[derive(Debug)]
pub(crate) struct OutboxRow {
    pub(crate) kind: String,
    pub(crate) dedupe_key: String,
    pub(crate) donation_id: Option<i64>,
    pub(crate) locale: String,
    pub(crate) payload: String,
    pub(crate) at: NaiveDateTime,
}

impl Appended {
    pub(crate) fn lens(&self) -> (usize, usize, usize, usize, usize, usize, usize) {
        (
            self.succeeded.len(),
            self.events.len(),
            self.effects.len(),
            self.donations.len(),
            self.entries.len(),
            self.audits.len(),
            self.outbox.len(),
        )
    }

    pub(crate) fn truncate(
        &mut self,
        (s, ev, f, d, e, a, o): (usize, usize, usize, usize, usize, usize, usize),
    ) {
        self.succeeded.truncate(s);
        self.events.truncate(ev);
        self.effects.truncate(f);
        self.donations.truncate(d);
        self.entries.truncate(e);
        self.audits.truncate(a);
        self.outbox.truncate(o);
    }

    /// Inserts the buffered donations now (before anything reads the donations table).
    pub(crate) fn flush_donations(&mut self, conn: &mut DbConn) -> Result<(), AppError> {
        insert_rows!(conn, donations::table, self.donations);
        self.donations.clear();
        self.flush_succeeded(conn)
    }

    /// Applies the buffered card successes: on PostgreSQL with one UPDATE ... FROM (VALUES ...)
    /// per chunk, on SQLite with one cached single-row UPDATE each.
    pub(crate) fn flush_succeeded(&mut self, conn: &mut DbConn) -> Result<(), AppError> {
        use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
        let c = match conn {
            DbConn::Sqlite(c) => {
                for s in &self.succeeded {
                    if s.tie {
                        MarkSucceeded::<true>(s).execute(c)?;
                    } else {
                        MarkSucceeded::<false>(s).execute(c)?;
                    }
                }
                self.succeeded.clear();
                return Ok(());
            }
            DbConn::Pg(c) => c,
        };
        for chunk in self.succeeded.chunks(INSERT_CHUNK) {
            let rows = (0..chunk.len())
                .map(|i| {
                    let b = i * 6;
                    format!(
                        "(${}::BIGINT, ${}::BIGINT, ${}, ${}, ${}::TIMESTAMP, ${}::BOOLEAN)",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE donations AS d SET status = 'succeeded', amount_minor = v.amount, \
                 payment_intent_id = v.pi, charge_id = v.charge, succeeded_at = v.at, \
                 after_close = v.after_close, reserved_until = NULL \
                 FROM (VALUES {rows}) AS v(id, amount, pi, charge, at, after_close) WHERE d.id = v.id"
            );
            let mut q = diesel::sql_query(sql.as_str()).into_boxed();
            for s in chunk {
                q = q
                    .bind::<BigInt, _>(s.id)
                    .bind::<BigInt, _>(s.amount_minor)
                    .bind::<Text, _>(s.payment_intent.clone())
                    .bind::<Nullable<Text>, _>(s.charge.clone())
                    .bind::<Timestamp, _>(s.at)
                    .bind::<Bool, _>(s.after_close);
            }
            q.execute(c)?;
        }
        self.succeeded.clear();
        Ok(())
    }

    /// Inserts the buffered Stripe events now (before anything reads `stripe_events`).
    pub(crate) fn flush_events(&mut self, conn: &mut DbConn) -> Result<(), AppError> {
        insert_rows!(conn, stripe_events::table, self.events);
        self.events.clear();
        Ok(())
    }

    /// Writes the buffered rows and the fund row at the end of the batch transaction: on
    /// PostgreSQL with one statement (see `pg_write`), on SQLite one per row.
    pub fn write(&mut self, conn: &mut DbConn, st: &FundState) -> Result<Written, AppError> {
        if let Some(written) = self.write_at_once(conn, st)? {
            return Ok(written);
        }
        self.flush(conn)?;
        persist(conn, st)?;
        Ok(Written::Whole)
    }

    /// PostgreSQL: the batch in one statement (see `pg_write`), if its rows fit one; `None`,
    /// with nothing written, otherwise. Outside a transaction the statement commits by itself.
    pub fn write_at_once(
        &mut self,
        conn: &mut DbConn,
        st: &FundState,
    ) -> Result<Option<Written>, AppError> {
        let DbConn::Pg(c) = conn else {
            return Ok(None);
        };
        let Some(w) = BatchWrite::take(self, &st.row) else {
            return Ok(None);
        };
        Ok(Some(if w.execute(c)? == 1 {
            Written::Whole
        } else {
            Written::Stale
        }))
    }

    /// Writes the buffered rows (inside the batch transaction).
    fn flush(&mut self, conn: &mut DbConn) -> Result<(), AppError> {
        self.flush_donations(conn)?;
        self.flush_events(conn)?;
        insert_rows!(conn, ledger_entries::table, self.entries);
        let audits: Vec<NewAudit<'_>> = self
            .audits
            .iter()
            .map(|(at, actor, action, detail)| NewAudit {
                at: *at,
                actor,
                action,
                detail,
            })
            .collect();
        insert_rows!(conn, audit_log::table, audits);
        let outbox: Vec<NewOutbox<'_>> = self
            .outbox
            .iter()
            .map(|r| NewOutbox {
                kind: &r.kind,
                dedupe_key: &r.dedupe_key,
                donation_id: r.donation_id,
                locale: &r.locale,
                payload: &r.payload,
                created_at: r.at,
                next_attempt_at: r.at,
            })
            .collect();
        // A second email for the same dedupe key (a repeated event) is dropped.
        insert_rows!(conn, outbox::table, outbox, on_conflict_do_nothing);
        Ok(())
    }
}

/// A card payment's success, to write on its donation.
#[derive(Debug, Clone)]
pub struct Succeeded {
    /// Donation id.
    pub id: i64,
    /// Amount received.
    pub amount_minor: i64,
    /// `pi_...`.
    pub payment_intent: String,
    /// The charge, if known.
    pub charge: Option<String>,
    /// The donation gets its PaymentIntent now (it was found by the id in the metadata).
    pub tie: bool,
    /// Recorded while intake was not open.
    pub after_close: bool,
    /// When.
    pub at: NaiveDateTime,
}
