//! The writer's in-memory copy of the fund row and periods, reloaded under lock each batch.

use diesel::prelude::*;

use crate::config::StoredFund;
use crate::db::DbConn;
use crate::db::models::{FundRow, LedgerEntryRow, PeriodRow};
use crate::db::schema::{funds, ledger_entries, periods};
use crate::domain::{Allocation, CapMode, IntakeState, PeriodBudget, allocate};
use crate::error::AppError;
use crate::money::Currency;

/// The id of the one fund row.
pub const FUND_ID: i64 = 1;

/// The fund as the writer sees it inside a batch.
#[derive(Debug, Clone)]
pub struct FundState {
    /// The fund row, including running totals and the chain head.
    pub row: FundRow,
    /// Periods in allocation order.
    pub periods: Vec<PeriodRow>,
    /// Parsed currency of the fund.
    pub currency: Currency,
    /// Money paid out so far (the head entry's `disbursed_after_minor`).
    pub disbursed_minor: i64,
    /// Money paid out against each period (disbursements not voided), by period id.
    pub paid: std::collections::BTreeMap<i64, i64>,
    /// When the head entry was written.
    pub head_at: chrono::NaiveDateTime,
}

impl FundState {
    /// Builds the state from rows; fails if stored names are unknown (a corrupted row).
    pub fn from_rows(row: FundRow, mut periods: Vec<PeriodRow>) -> Result<FundState, AppError> {
        let currency = Currency::from_code(&row.currency)
            .ok_or_else(|| AppError::internal(format!("unknown fund currency {}", row.currency)))?;
        if IntakeState::parse(&row.intake_state).is_none()
            || CapMode::parse(&row.cap_mode).is_none()
        {
            return Err(AppError::internal(
                "fund row has an unknown intake state or cap mode",
            ));
        }
        periods.sort_by_key(|p| (p.starts_on, p.id));
        Ok(FundState {
            head_at: row.updated_at,
            row,
            periods,
            currency,
            disbursed_minor: 0,
            paid: std::collections::BTreeMap::new(),
        })
    }

    /// Reads the fund and its periods.
    pub fn load(conn: &mut DbConn) -> Result<FundState, AppError> {
        let row = load_fund_row(conn)?;
        let periods = load_periods(conn)?;
        let head = head_of(conn, row.ledger_seq)?;
        let paid = paid_by_period(conn)?;
        let mut st = FundState::from_rows(row, periods)?;
        st.adopt(head, paid);
        Ok(st)
    }

    /// Current intake state.
    pub fn intake(&self) -> IntakeState {
        IntakeState::parse(&self.row.intake_state).unwrap_or(IntakeState::Paused)
    }

    /// Cap mode.
    pub fn cap_mode(&self) -> CapMode {
        CapMode::parse(&self.row.cap_mode).unwrap_or(CapMode::Soft)
    }

    /// Raised money spread over the periods.
    pub fn allocation(&self) -> Allocation {
        let budgets: Vec<PeriodBudget> = self
            .periods
            .iter()
            .map(|p| PeriodBudget {
                id: p.id,
                order: (p.starts_on, p.id),
                budget_minor: p.budget_minor,
            })
            .collect();
        allocate(self.row.raised_minor, &budgets)
    }
}

/// Reads the fund row.
pub fn load_fund_row(conn: &mut DbConn) -> Result<FundRow, AppError> {
    Ok(funds::table
        .find(FUND_ID)
        .select(FundRow::as_select())
        .first(conn)?)
}

/// The fund as stored, if this database has one yet (a command run before the first `serve`
/// finds none).
pub fn stored_fund(conn: &mut DbConn) -> Result<Option<StoredFund>, AppError> {
    let Some(row) = funds::table
        .find(FUND_ID)
        .select(FundRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let st = FundState::from_rows(row, Vec::new())?;
    Ok(Some(StoredFund {
        cap_mode: st.cap_mode(),
        name: st.row.name,
        currency: st.currency,
        target_minor: st.row.target_minor,
    }))
}

/// Once the fund exists, the database is the truth: amounts are read in its currency, and a
/// `FUND_*` setting that disagrees is named in one warning (they only create the fund).
pub fn adopt_stored_fund(
    config: &mut crate::config::Config,
    conn: &mut DbConn,
) -> anyhow::Result<()> {
    let Some(stored) = stored_fund(conn).map_err(|e| anyhow::anyhow!("{}", e.detail))? else {
        return Ok(());
    };
    let differ = config
        .adopt_fund(&stored)
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    if !differ.is_empty() {
        tracing::warn!(
            "the fund in the database differs from the FUND_* settings, which only create it; using the database: {}",
            differ.join("; ")
        );
    }
    Ok(())
}

/// Up to `limit` ledger entries after `seq`, oldest first: one indexed page of the chain.
pub fn entries_after(
    conn: &mut DbConn,
    seq: i64,
    limit: i64,
) -> Result<Vec<LedgerEntryRow>, AppError> {
    Ok(ledger_entries::table
        .filter(ledger_entries::seq.gt(seq))
        .order(ledger_entries::seq.asc())
        .limit(limit)
        .select(LedgerEntryRow::as_select())
        .load(conn)?)
}

/// Reads every period.
pub fn load_periods(conn: &mut DbConn) -> Result<Vec<PeriodRow>, AppError> {
    Ok(periods::table
        .select(PeriodRow::as_select())
        .order((periods::starts_on.asc(), periods::id.asc()))
        .load(conn)?)
}

/// Locks the fund row for this batch (so several instances serialise) and reads it.
/// On SQLite the first statement is a write, which takes the database's write lock up front
/// instead of failing later when a read transaction tries to upgrade.
pub(super) fn lock_and_load(
    conn: &mut DbConn,
    cached: Option<&FundState>,
) -> Result<FundState, AppError> {
    let row = match conn {
        DbConn::Pg(c) => funds::table
            .find(FUND_ID)
            .select(FundRow::as_select())
            .for_update()
            .first(c)?,
        DbConn::Sqlite(c) => {
            super::cached::LockFund.execute(c)?;
            // Not `first`: SQLite prepares a statement with a bound LIMIT again at every run.
            funds::table
                .find(FUND_ID)
                .select(FundRow::as_select())
                .get_result(c)?
        }
    };
    let (periods, head, paid) = match cached {
        Some(st) if st.row.version == row.version => (
            st.periods.clone(),
            Some((st.disbursed_minor, st.head_at)),
            st.paid.clone(),
        ),
        _ => (
            load_periods(conn)?,
            head_of(conn, row.ledger_seq)?,
            paid_by_period(conn)?,
        ),
    };
    let mut st = FundState::from_rows(row, periods)?;
    st.adopt(head, paid);
    Ok(st)
}

impl FundState {
    fn adopt(
        &mut self,
        head: Option<(i64, chrono::NaiveDateTime)>,
        paid: std::collections::BTreeMap<i64, i64>,
    ) {
        if let Some((disbursed, at)) = head {
            self.disbursed_minor = disbursed;
            self.head_at = at;
        }
        self.paid = paid;
    }
}

/// The money paid out after entry `seq` and when it was written (one primary-key read).
fn head_of(conn: &mut DbConn, seq: i64) -> Result<Option<(i64, chrono::NaiveDateTime)>, AppError> {
    use crate::db::schema::ledger_entries;
    Ok(ledger_entries::table
        .find(seq)
        .select((
            ledger_entries::disbursed_after_minor,
            ledger_entries::created_at,
        ))
        .first(conn)
        .optional()?)
}

/// Disbursements not voided, summed by period (a few hundred rows in a fund's life).
fn paid_by_period(conn: &mut DbConn) -> Result<std::collections::BTreeMap<i64, i64>, AppError> {
    use crate::db::schema::disbursements;
    let rows: Vec<(Option<i64>, i64)> = disbursements::table
        .filter(disbursements::voided_at.is_null())
        .filter(disbursements::state.eq("recorded"))
        .select((disbursements::period_id, disbursements::amount_minor))
        .load(conn)?;
    let mut paid = std::collections::BTreeMap::new();
    for (period, amount) in rows {
        if let Some(p) = period {
            *paid.entry(p).or_insert(0) += amount;
        }
    }
    Ok(paid)
}

pub(super) fn persist(conn: &mut DbConn, st: &FundState) -> Result<(), AppError> {
    let q = super::cached::PersistFund(&st.row);
    match conn {
        DbConn::Pg(c) => q.execute(c)?,
        DbConn::Sqlite(c) => q.execute(c)?,
    };
    Ok(())
}
