//! Statements of fixed text that the writer runs every batch, so diesel prepares each once
//! per connection and keeps it.
//!
//! diesel caches a prepared statement only when its text cannot vary: never an UPDATE built
//! with its DSL, a `sql_query`, a multi-row INSERT of a slice or an `IN` list. On SQLite a
//! batch has no round trips to save, so its writes are single-row statements of fixed text;
//! preparing its multi-row statements anew took 11% of the writer thread's time
//! (BENCHMARKS.md, "Sixth session"). PostgreSQL writes a batch with `pg_write` instead.

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::appended::Succeeded;
use crate::db::models::FundRow;

/// Pushes `UPDATE funds SET` every column of `f` `WHERE id = f.id`.
pub(super) fn push_fund_update<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    f: &'b FundRow,
) -> QueryResult<()>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Timestamp>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    chrono::NaiveDateTime: ToSql<Timestamp, DB>,
{
    out.push_sql("UPDATE funds SET name = ");
    out.push_bind_param::<Text, _>(&f.name)?;
    out.push_sql(", currency = ");
    out.push_bind_param::<Text, _>(&f.currency)?;
    out.push_sql(", target_minor = ");
    out.push_bind_param::<BigInt, _>(&f.target_minor)?;
    out.push_sql(", raised_minor = ");
    out.push_bind_param::<BigInt, _>(&f.raised_minor)?;
    out.push_sql(", donation_count = ");
    out.push_bind_param::<BigInt, _>(&f.donation_count)?;
    out.push_sql(", reserved_minor = ");
    out.push_bind_param::<BigInt, _>(&f.reserved_minor)?;
    out.push_sql(", cap_mode = ");
    out.push_bind_param::<Text, _>(&f.cap_mode)?;
    out.push_sql(", intake_state = ");
    out.push_bind_param::<Text, _>(&f.intake_state)?;
    out.push_sql(", intake_message = ");
    out.push_bind_param::<Text, _>(&f.intake_message)?;
    out.push_sql(", intake_changed_at = ");
    out.push_bind_param::<Timestamp, _>(&f.intake_changed_at)?;
    out.push_sql(", ledger_seq = ");
    out.push_bind_param::<BigInt, _>(&f.ledger_seq)?;
    out.push_sql(", last_donation_id = ");
    out.push_bind_param::<BigInt, _>(&f.last_donation_id)?;
    out.push_sql(", ledger_head = ");
    out.push_bind_param::<Text, _>(&f.ledger_head)?;
    out.push_sql(", version = ");
    out.push_bind_param::<BigInt, _>(&f.version)?;
    out.push_sql(", created_at = ");
    out.push_bind_param::<Timestamp, _>(&f.created_at)?;
    out.push_sql(", updated_at = ");
    out.push_bind_param::<Timestamp, _>(&f.updated_at)?;
    out.push_sql(" WHERE id = ");
    out.push_bind_param::<BigInt, _>(&f.id)?;
    Ok(())
}

/// Writes the whole fund row.
pub(super) struct PersistFund<'a>(pub(super) &'a FundRow);

impl QueryId for PersistFund<'_> {
    type QueryId = PersistFund<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for PersistFund<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Timestamp>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    chrono::NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        push_fund_update(&mut out, self.0)
    }
}

impl<C: Connection> RunQueryDsl<C> for PersistFund<'_> {}

/// SQLite: takes the database's write lock at the batch's first statement (a write), instead
/// of failing later when a read transaction tries to upgrade.
pub(super) struct LockFund;

impl QueryId for LockFund {
    type QueryId = LockFund;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for LockFund {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE funds SET version = version WHERE id = 1");
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for LockFund {}

/// SQLite: records one card success on its donation. `TIE`: the donation was found by the id
/// in the intent's metadata and gets its PaymentIntent now; otherwise the column is left out,
/// so its unique index is not rewritten with the same value.
pub(super) struct MarkSucceeded<'a, const TIE: bool>(pub(super) &'a Succeeded);

impl<const TIE: bool> QueryId for MarkSucceeded<'_, TIE> {
    type QueryId = MarkSucceeded<'static, TIE>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const TIE: bool> QueryFragment<Sqlite> for MarkSucceeded<'_, TIE> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let s = self.0;
        out.push_sql(
            "UPDATE donations SET status = 'succeeded', reserved_until = NULL, amount_minor = ",
        );
        out.push_bind_param::<BigInt, _>(&s.amount_minor)?;
        out.push_sql(", charge_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&s.charge)?;
        out.push_sql(", succeeded_at = ");
        out.push_bind_param::<Timestamp, _>(&s.at)?;
        out.push_sql(", after_close = ");
        out.push_bind_param::<Bool, _>(&s.after_close)?;
        if TIE {
            out.push_sql(", payment_intent_id = ");
            out.push_bind_param::<Text, _>(&s.payment_intent)?;
        }
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&s.id)?;
        Ok(())
    }
}

impl<const TIE: bool> RunQueryDsl<SqliteConnection> for MarkSucceeded<'_, TIE> {}
