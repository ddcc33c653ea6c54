//! First start: the fund row and the ledger's first entry.

use diesel::prelude::*;

use super::state::FUND_ID;
use crate::config::FundDefaults;
use crate::db::models::{FundRow, LedgerEntryRow};
use crate::db::schema::{funds, ledger_entries};
use crate::db::{self, DbConn};
use crate::domain::{GENESIS_HASH, HASH_VERSION, IntakeState, entry_hash};

/// Creates the fund row and the chain's first entry if this database has none.
pub(super) fn bootstrap(conn: &mut DbConn, defaults: &FundDefaults) -> Result<(), anyhow::Error> {
    let exists = funds::table
        .find(FUND_ID)
        .select(funds::id)
        .first::<i64>(conn)
        .optional()?;
    if exists.is_some() {
        return Ok(());
    }
    let now = db::now();
    let inserted = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let memo = format!("fund created: {}", defaults.name);
        let intake = IntakeState::Open.after_totals(0, defaults.target_minor);
        let mut genesis = LedgerEntryRow {
            seq: 1,
            created_at: now,
            kind: "fund_created".into(),
            donation_id: None,
            amount_minor: 0,
            count_delta: 0,
            raised_after_minor: 0,
            target_after_minor: defaults.target_minor,
            intake_after: intake.as_str().into(),
            memo,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
            hash_version: HASH_VERSION,
            disbursed_after_minor: 0,
            public_memo: String::new(),
        };
        let hash = entry_hash(GENESIS_HASH, &genesis.fields()).unwrap_or_default();
        genesis.hash.clone_from(&hash);
        diesel::insert_into(funds::table)
            .values(&FundRow {
                id: FUND_ID,
                name: defaults.name.clone(),
                currency: defaults.currency.code().to_owned(),
                target_minor: defaults.target_minor,
                raised_minor: 0,
                donation_count: 0,
                reserved_minor: 0,
                cap_mode: defaults.cap_mode.as_str().to_owned(),
                intake_state: intake.as_str().to_owned(),
                intake_message: String::new(),
                intake_changed_at: now,
                ledger_seq: 1,
                last_donation_id: 0,
                ledger_head: hash.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        diesel::insert_into(ledger_entries::table)
            .values(&genesis)
            .execute(conn)?;
        Ok(())
    });
    match inserted {
        Ok(()) => {
            tracing::info!(name = %defaults.name, "fund created");
            Ok(())
        }
        // Another instance created it at the same moment.
        Err(e)
            if funds::table
                .find(FUND_ID)
                .select(funds::id)
                .first::<i64>(conn)
                .is_ok() =>
        {
            tracing::debug!(error = %e, "fund created concurrently");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
