//! PostgreSQL: everything a batch writes at its end in one statement.
//!
//! Written one statement per table, a batch of webhooks cost the writer's backend a parse and
//! a plan for each of five multi-row statements (diesel never caches a multi-row INSERT or an
//! UPDATE) plus a round trip each. Here the rows travel as one array per column, unnested by
//! data-modifying CTEs: the text never changes, so diesel prepares it once per connection.
//!
//! The fund row's UPDATE comes first and holds the rest: it matches only while the row still
//! has the version the batch started from, and every other CTE writes only if it matched
//! (they read its `RETURNING`). The statement returns one row when it wrote the batch, and
//! none, having written nothing, when another instance's batch came in between. So a batch
//! that read without the fund row's lock can be written by this one statement alone, outside
//! a transaction (see `Writer::batch`); inside one, under the lock, it always matches.
//! Either way the fund row is locked before any other row is written (each CTE waits for
//! `f`, which takes the lock), so the per-statement reference checks of migration
//! `donation_refs`, which assume the writer holds that lock, still run under it.
//!
//! Rows a CTE inserts are invisible to the other CTEs of the same statement (they all see one
//! snapshot), so this is used only when no card success targets a donation inserted by the
//! same write (the writer inserts such donations earlier, before anything looks them up).
//! Foreign keys are checked at the end of the statement, when all rows are in.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};

use super::appended::Appended;
use crate::db::models::FundRow;

/// A batch's rows, one array per column, and the fund row: the statement's binds.
pub(super) struct BatchWrite {
    rows: Columns,
    fund: FundRow,
    /// The fund row's version the batch started from: the write happens only if the row
    /// still has it.
    from_version: i64,
}

/// The columns, in the order the SQL names them.
#[derive(Default)]
struct Columns {
    // New donations.
    d_id: Vec<i64>,
    d_method: Vec<String>,
    d_status: Vec<String>,
    d_amount: Vec<i64>,
    d_currency: Vec<String>,
    d_donor: Vec<String>,
    d_email: Vec<Option<String>>,
    d_anonymous: Vec<bool>,
    d_locale: Vec<String>,
    d_reference: Vec<Option<String>>,
    d_received_on: Vec<Option<NaiveDate>>,
    d_pi: Vec<Option<String>>,
    d_after_close: Vec<bool>,
    d_recorded_by: Vec<Option<String>>,
    d_created_at: Vec<NaiveDateTime>,
    d_succeeded_at: Vec<Option<NaiveDateTime>>,
    d_reserved_until: Vec<Option<NaiveDateTime>>,
    d_fee_covered: Vec<i64>,
    // Card successes.
    s_id: Vec<i64>,
    s_amount: Vec<i64>,
    s_pi: Vec<String>,
    s_charge: Vec<Option<String>>,
    s_at: Vec<NaiveDateTime>,
    s_after_close: Vec<bool>,
    // Stripe events.
    e_id: Vec<String>,
    e_type: Vec<String>,
    e_pi: Vec<Option<String>>,
    e_charge: Vec<Option<String>>,
    e_created: Vec<i64>,
    e_received_at: Vec<NaiveDateTime>,
    e_applied_at: Vec<Option<NaiveDateTime>>,
    e_fact: Vec<String>,
    // Ledger entries.
    l_seq: Vec<i64>,
    l_created_at: Vec<NaiveDateTime>,
    l_kind: Vec<String>,
    l_donation: Vec<Option<i64>>,
    l_amount: Vec<i64>,
    l_count: Vec<i64>,
    l_raised_after: Vec<i64>,
    l_target_after: Vec<i64>,
    l_intake_after: Vec<String>,
    l_memo: Vec<String>,
    l_prev_hash: Vec<String>,
    l_hash: Vec<String>,
    l_version: Vec<i32>,
    l_disbursed_after: Vec<i64>,
    l_public_memo: Vec<String>,
    // Audit records.
    a_at: Vec<NaiveDateTime>,
    a_actor: Vec<String>,
    a_action: Vec<String>,
    a_detail: Vec<String>,
    // Outbox.
    o_kind: Vec<String>,
    o_dedupe: Vec<String>,
    o_donation: Vec<Option<i64>>,
    o_locale: Vec<String>,
    o_payload: Vec<String>,
    o_at: Vec<NaiveDateTime>,
}

impl BatchWrite {
    /// Takes the buffered rows (leaving `a` empty) and the fund row to write; `None`, with
    /// nothing taken, when a success targets a donation inserted by this same write.
    pub(super) fn take(a: &mut Appended, fund: &FundRow) -> Option<BatchWrite> {
        if a.succeeded
            .iter()
            .any(|s| a.donations.iter().any(|d| d.id == s.id))
        {
            return None;
        }
        let mut w = Columns::default();
        for d in a.donations.drain(..) {
            w.d_id.push(d.id);
            w.d_method.push(d.method);
            w.d_status.push(d.status);
            w.d_amount.push(d.amount_minor);
            w.d_currency.push(d.currency);
            w.d_donor.push(d.donor_name);
            w.d_email.push(d.email);
            w.d_anonymous.push(d.anonymous);
            w.d_locale.push(d.locale);
            w.d_reference.push(d.reference);
            w.d_received_on.push(d.received_on);
            w.d_pi.push(d.payment_intent_id);
            w.d_after_close.push(d.after_close);
            w.d_recorded_by.push(d.recorded_by);
            w.d_created_at.push(d.created_at);
            w.d_succeeded_at.push(d.succeeded_at);
            w.d_reserved_until.push(d.reserved_until);
            w.d_fee_covered.push(d.fee_covered_minor);
        }
        for s in a.succeeded.drain(..) {
            w.s_id.push(s.id);
            w.s_amount.push(s.amount_minor);
            w.s_pi.push(s.payment_intent);
            w.s_charge.push(s.charge);
            w.s_at.push(s.at);
            w.s_after_close.push(s.after_close);
        }
        for e in a.events.drain(..) {
            w.e_id.push(e.event_id);
            w.e_type.push(e.event_type);
            w.e_pi.push(e.payment_intent_id);
            w.e_charge.push(e.charge_id);
            w.e_created.push(e.created);
            w.e_received_at.push(e.received_at);
            w.e_applied_at.push(e.applied_at);
            w.e_fact.push(e.fact);
        }
        for l in a.entries.drain(..) {
            w.l_seq.push(l.seq);
            w.l_created_at.push(l.created_at);
            w.l_kind.push(l.kind);
            w.l_donation.push(l.donation_id);
            w.l_amount.push(l.amount_minor);
            w.l_count.push(l.count_delta);
            w.l_raised_after.push(l.raised_after_minor);
            w.l_target_after.push(l.target_after_minor);
            w.l_intake_after.push(l.intake_after);
            w.l_memo.push(l.memo);
            w.l_prev_hash.push(l.prev_hash);
            w.l_hash.push(l.hash);
            w.l_version.push(l.hash_version);
            w.l_disbursed_after.push(l.disbursed_after_minor);
            w.l_public_memo.push(l.public_memo);
        }
        for (at, actor, action, detail) in a.audits.drain(..) {
            w.a_at.push(at);
            w.a_actor.push(actor);
            w.a_action.push(action);
            w.a_detail.push(detail);
        }
        for o in a.outbox.drain(..) {
            w.o_kind.push(o.kind);
            w.o_dedupe.push(o.dedupe_key);
            w.o_donation.push(o.donation_id);
            w.o_locale.push(o.locale);
            w.o_payload.push(o.payload);
            w.o_at.push(o.at);
        }
        Some(BatchWrite {
            rows: w,
            fund: fund.clone(),
            from_version: fund.version - 1,
        })
    }
}

/// Names the statement for diesel's cache: the text is the same for every batch.
pub(super) struct BatchWriteId;

impl QueryId for BatchWrite {
    type QueryId = BatchWriteId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for BatchWrite {}

/// Pushes `", "` then a bind, or just the bind for the first of a list.
macro_rules! binds {
    ($out:ident; $($st:ty => $v:expr),+ $(,)?) => {{
        let mut first = true;
        $(
            if !first {
                $out.push_sql(", ");
            }
            first = false;
            $out.push_bind_param::<Array<$st>, _>($v)?;
        )+
        let _ = first;
    }};
}

impl QueryFragment<Pg> for BatchWrite {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (r, f) = (&self.rows, &self.fund);
        out.push_sql("WITH f AS (");
        super::cached::push_fund_update(&mut out, f)?;
        out.push_sql(" AND version = ");
        out.push_bind_param::<BigInt, _>(&self.from_version)?;
        out.push_sql(" RETURNING 1), ");
        out.push_sql(
            "new_donations AS (INSERT INTO donations (id, method, status, amount_minor, \
             currency, donor_name, email, anonymous, locale, reference, received_on, \
             payment_intent_id, after_close, recorded_by, created_at, succeeded_at, \
             reserved_until, fee_covered_minor) SELECT * FROM unnest(",
        );
        binds!(out;
            BigInt => &r.d_id, Text => &r.d_method, Text => &r.d_status,
            BigInt => &r.d_amount, Text => &r.d_currency, Text => &r.d_donor,
            Nullable<Text> => &r.d_email, Bool => &r.d_anonymous, Text => &r.d_locale,
            Nullable<Text> => &r.d_reference, Nullable<Date> => &r.d_received_on,
            Nullable<Text> => &r.d_pi, Bool => &r.d_after_close,
            Nullable<Text> => &r.d_recorded_by, Timestamp => &r.d_created_at,
            Nullable<Timestamp> => &r.d_succeeded_at,
            Nullable<Timestamp> => &r.d_reserved_until,
            BigInt => &r.d_fee_covered,
        );
        out.push_sql(
            ") WHERE EXISTS (SELECT FROM f)), succeeded AS (UPDATE donations AS d SET status = 'succeeded', \
             amount_minor = v.amount, payment_intent_id = v.pi, charge_id = v.charge, \
             succeeded_at = v.at, after_close = v.after_close, reserved_until = NULL \
             FROM unnest(",
        );
        binds!(out;
            BigInt => &r.s_id, BigInt => &r.s_amount, Text => &r.s_pi,
            Nullable<Text> => &r.s_charge, Timestamp => &r.s_at, Bool => &r.s_after_close,
        );
        out.push_sql(
            ") AS v(id, amount, pi, charge, at, after_close) WHERE d.id = v.id AND EXISTS (SELECT FROM f)), \
             events AS (INSERT INTO stripe_events (event_id, event_type, payment_intent_id, \
             charge_id, created, received_at, applied_at, fact) SELECT * FROM unnest(",
        );
        binds!(out;
            Text => &r.e_id, Text => &r.e_type, Nullable<Text> => &r.e_pi,
            Nullable<Text> => &r.e_charge, BigInt => &r.e_created,
            Timestamp => &r.e_received_at, Nullable<Timestamp> => &r.e_applied_at,
            Text => &r.e_fact,
        );
        out.push_sql(
            ") WHERE EXISTS (SELECT FROM f)), entries AS (INSERT INTO ledger_entries (seq, created_at, kind, donation_id, \
             amount_minor, count_delta, raised_after_minor, target_after_minor, intake_after, \
             memo, prev_hash, hash, hash_version, disbursed_after_minor, public_memo) \
             SELECT * FROM unnest(",
        );
        binds!(out;
            BigInt => &r.l_seq, Timestamp => &r.l_created_at, Text => &r.l_kind,
            Nullable<BigInt> => &r.l_donation, BigInt => &r.l_amount,
            BigInt => &r.l_count, BigInt => &r.l_raised_after,
            BigInt => &r.l_target_after, Text => &r.l_intake_after, Text => &r.l_memo,
            Text => &r.l_prev_hash, Text => &r.l_hash, Integer => &r.l_version,
            BigInt => &r.l_disbursed_after, Text => &r.l_public_memo,
        );
        out.push_sql(
            ") WHERE EXISTS (SELECT FROM f)), audits AS (INSERT INTO audit_log (at, actor, action, detail) \
             SELECT * FROM unnest(",
        );
        binds!(out;
            Timestamp => &r.a_at, Text => &r.a_actor, Text => &r.a_action,
            Text => &r.a_detail,
        );
        // A second email for the same dedupe key (a repeated event) is dropped.
        out.push_sql(
            ") WHERE EXISTS (SELECT FROM f)), mail AS (INSERT INTO outbox (kind, dedupe_key, donation_id, locale, payload, \
             created_at, next_attempt_at) SELECT k, dk, di, l, p, t, t FROM unnest(",
        );
        binds!(out;
            Text => &r.o_kind, Text => &r.o_dedupe, Nullable<BigInt> => &r.o_donation,
            Text => &r.o_locale, Text => &r.o_payload, Timestamp => &r.o_at,
        );
        out.push_sql(
            ") AS o(k, dk, di, l, p, t) WHERE EXISTS (SELECT FROM f) ON CONFLICT DO NOTHING) \
             SELECT 1 FROM f",
        );
        Ok(())
    }
}
