//! The rows of a backup: one full-row type per table of `src/db/schema.rs`, and the code that
//! dumps them from a snapshot and inserts them back, in one fixed order.

use anyhow::{Context, bail};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::Sink;
use crate::db::{DbConn, schema};

/// Entries of a backup made before hash version 2 are version 1.
fn version_1() -> i32 {
    1
}

/// Rows read per query while dumping, so memory stays flat however large the fund.
const PAGE: i64 = 2_000;

/// Declares one full-row type per table (read with `Selectable`, written with `Insertable`,
/// serialised with serde; unknown fields are refused) and the dump/insert code over all of
/// them in a fixed order: parents before the rows that name them (foreign keys on SQLite,
/// statement-level reference triggers on PostgreSQL).
macro_rules! tables {
    ($( $t:ident => $S:ident by $pk:ident { $($(#[$m:meta])* $c:ident : $ty:ty),* $(,)? } )*) => {
        $(
            #[derive(Queryable, Selectable, Insertable, Serialize, Deserialize)]
            #[diesel(table_name = schema::$t, treat_none_as_default_value = false)]
            #[serde(deny_unknown_fields)]
            struct $S { $($(#[$m])* $c: $ty),* }
        )*

        /// For each table: its `all_columns` and its row type's columns, as SQL text (a test
        /// checks they are equal, so a column added to the schema cannot be left out).
        #[cfg(test)]
        fn selects() -> Vec<(&'static str, String, String)> {
            use diesel::sqlite::Sqlite;
            vec![$((
                stringify!($t),
                diesel::debug_query::<Sqlite, _>(
                    &schema::$t::table.select(schema::$t::all_columns),
                ).to_string(),
                diesel::debug_query::<Sqlite, _>(&schema::$t::table.select($S::as_select()))
                    .to_string(),
            )),*]
        }

        /// Every table of the schema, in the order a backup holds them.
        pub const TABLES: &[&str] = &[$(stringify!($t)),*];

        pub(super) fn dump_tables(conn: &mut DbConn, out: &mut Sink) -> anyhow::Result<()> {
            $(
                let mut after = None;
                loop {
                    // Keyset paging by primary key inside the one snapshot: each page is an
                    // index range, so time stays linear and memory flat however large.
                    let mut query = schema::$t::table
                        .order(schema::$t::$pk.asc())
                        .limit(PAGE)
                        .select($S::as_select())
                        .into_boxed();
                    if let Some(last) = after.take() {
                        query = query.filter(schema::$t::$pk.gt(last));
                    }
                    let page: Vec<$S> = query
                        .load(conn)
                        .with_context(|| format!("reading {}", stringify!($t)))?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.$pk.clone());
                    for row in &page {
                        out.row(stringify!($t), row)?;
                    }
                }
            )*
            Ok(())
        }

        /// Inserts `rows` of `table` in one statement.
        pub(super) fn insert_rows(conn: &mut DbConn, table: &str, rows: Vec<serde_json::Value>) -> anyhow::Result<()> {
            match table {
                $(
                    stringify!($t) => {
                        let rows = rows
                            .into_iter()
                            .map(serde_json::from_value::<$S>)
                            .collect::<Result<Vec<_>, _>>()
                            .with_context(|| format!("a {} row does not fit the table", stringify!($t)))?;
                        // Batch inserts are per engine (diesel's multi-connection backend
                        // has none).
                        match conn {
                            DbConn::Pg(pg) => diesel::insert_into(schema::$t::table).values(&rows).execute(pg)?,
                            DbConn::Sqlite(lite) => diesel::insert_into(schema::$t::table).values(&rows).execute(lite)?,
                        };
                    }
                )*
                other => bail!("unknown table {other:?}"),
            }
            Ok(())
        }
    };
}

tables! {
    funds => Fund by id {
        id: i64, name: String, currency: String, target_minor: i64, raised_minor: i64,
        donation_count: i64, reserved_minor: i64, cap_mode: String, intake_state: String,
        intake_message: String, intake_changed_at: NaiveDateTime, ledger_seq: i64,
        last_donation_id: i64, ledger_head: String, version: i64, created_at: NaiveDateTime,
        updated_at: NaiveDateTime,
    }
    periods => Period by id {
        id: i64, label: String, starts_on: NaiveDate, ends_on: NaiveDate, budget_minor: i64,
        created_at: NaiveDateTime, updated_at: NaiveDateTime,
    }
    donations => Donation by id {
        id: i64, method: String, status: String, amount_minor: i64, refunded_minor: i64,
        disputed_minor: i64, fee_minor: Option<i64>, net_minor: Option<i64>, currency: String,
        donor_name: String, email: Option<String>, anonymous: bool, locale: String,
        reference: Option<String>, received_on: Option<NaiveDate>,
        payment_intent_id: Option<String>, after_close: bool, recorded_by: Option<String>,
        created_at: NaiveDateTime, succeeded_at: Option<NaiveDateTime>,
        charge_id: Option<String>, reserved_until: Option<NaiveDateTime>,
        dispute_status: Option<String>, payout_id: Option<String>,
        fee_currency: Option<String>, settled_minor: Option<i64>,
        exchange_rate: Option<String>, processing_since: Option<NaiveDateTime>,
        // Backups made before the column existed have none: no fee was covered then.
        #[serde(default)] fee_covered_minor: i64,
        #[serde(default)] payment_method_type: Option<String>,
    }
    ledger_entries => Entry by seq {
        seq: i64, created_at: NaiveDateTime, kind: String, donation_id: Option<i64>,
        amount_minor: i64, count_delta: i64, raised_after_minor: i64, target_after_minor: i64,
        intake_after: String, memo: String, prev_hash: String, hash: String,
        #[serde(default = "version_1")] hash_version: i32,
        #[serde(default)] disbursed_after_minor: i64,
        #[serde(default)] public_memo: String,
    }
    disbursements => Disbursement by id {
        id: i64, amount_minor: i64, payee: String, period_id: Option<i64>, paid_on: NaiveDate,
        reference: String, memo: String, public_memo: String, created_at: NaiveDateTime,
        created_by: String, entry_seq: Option<i64>, voided_at: Option<NaiveDateTime>,
        voided_by: Option<String>, void_entry_seq: Option<i64>, state: String,
        approved_by: Option<String>, decided_at: Option<NaiveDateTime>,
    }
    users => User by id {
        id: i64, email: String, password_hash: String, role: String, created_at: NaiveDateTime,
        #[serde(default)] disabled: bool,
        #[serde(default)] totp_secret: Option<String>,
        #[serde(default)] totp_enabled_at: Option<NaiveDateTime>,
        #[serde(default)] totp_last_step: Option<i64>,
    }
    recovery_codes => RecoveryCode by id {
        id: i64, user_id: i64, code_hash: String, used_at: Option<NaiveDateTime>,
    }
    staff_sessions => StaffSession by id {
        id: String, user_id: i64, created_at: NaiveDateTime, expires_at: NaiveDateTime,
        ended_at: Option<NaiveDateTime>, ended_by: Option<String>, client: String,
        user_agent: String,
    }
    idempotency_keys => IdempotencyKey by scope_key {
        scope_key: String, request_hash: String, status_code: i32, response_body: String,
        created_at: NaiveDateTime, donation_id: Option<i64>,
    }
    audit_log => Audit by id {
        id: i64, at: NaiveDateTime, actor: String, action: String, detail: String,
    }
    outbox => Outbox by id {
        id: i64, kind: String, dedupe_key: String, donation_id: Option<i64>, locale: String,
        payload: String, created_at: NaiveDateTime, attempts: i32,
        next_attempt_at: NaiveDateTime, last_error: Option<String>,
        sent_at: Option<NaiveDateTime>, claim_token: Option<String>,
        failed_at: Option<NaiveDateTime>,
    }
    stripe_events => StripeEvent by event_id {
        event_id: String, event_type: String, payment_intent_id: Option<String>,
        charge_id: Option<String>, created: i64, received_at: NaiveDateTime,
        applied_at: Option<NaiveDateTime>, fact: String,
    }
    payouts => Payout by id {
        id: String, amount_minor: i64, currency: String, status: String,
        arrival_date: Option<i64>, created: i64, updated_at: NaiveDateTime,
        reconciled_at: Option<NaiveDateTime>, matched: i32, missing_in_ledger: i32,
        missing_in_stripe: i32, differences: i32, report: String,
    }
    login_limits => LoginLimit by key {
        key: String, tat_us: i64,
    }
    refund_requests => RefundRequest by id {
        id: i64, idempotency_key: Option<String>, request_hash: String, donation_id: i64,
        amount_minor: i64, actor: String, reason: String, state: String,
        stripe_refund_id: Option<String>, status_code: Option<i32>,
        response_body: Option<String>, created_at: NaiveDateTime, updated_at: NaiveDateTime,
        approved_by: Option<String>,
        #[serde(default)] outside_stripe: bool,
    }
    lookup_codes => LookupCode by id {
        id: i64, email: String, code_hash: String, link_hash: String, attempts: i32,
        created_at: NaiveDateTime, expires_at: NaiveDateTime, spent_at: Option<NaiveDateTime>,
    }
}

#[cfg(test)]
mod tests {
    use super::{TABLES, selects};

    #[test]
    fn every_table_of_the_schema_is_backed_up() {
        let schema = include_str!("../db/schema.rs");
        let mut declared: Vec<&str> = schema
            .split("diesel::table! {")
            .skip(1)
            .filter_map(|t| t.split_whitespace().next())
            .collect();
        let mut backed_up = TABLES.to_vec();
        declared.sort_unstable();
        backed_up.sort_unstable();
        assert_eq!(declared, backed_up);
    }

    #[test]
    fn every_column_of_every_table_is_backed_up() {
        for (table, all, ours) in selects() {
            assert_eq!(
                all, ours,
                "{table}: the backup's row type misses or reorders a column"
            );
        }
    }
}
