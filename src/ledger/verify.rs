//! `crowdledger verify`: recomputes the hash chain and every total from the ledger entries
//! and compares them with what the database says now.

use diesel::prelude::*;

use super::state::{entries_after, load_fund_row};
use crate::db::DbConn;
use crate::db::models::LedgerEntryRow;
use crate::db::schema::donations;
use crate::domain::{GENESIS_HASH, entry_hash};
use crate::error::AppError;

const PAGE: i64 = 5_000;

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: i64,
    /// Raised recomputed from the entries, minor units.
    pub raised_minor: i64,
    /// Donation count recomputed from the entries.
    pub donation_count: i64,
    /// Money paid out, recomputed from the entries, minor units.
    pub disbursed_minor: i64,
    /// Each period as its last `period` entry states it (public memo JSON), by id.
    pub periods: std::collections::BTreeMap<i64, serde_json::Value>,
    /// The first entry whose chain or figures are wrong, if any.
    pub first_bad_seq: Option<i64>,
    /// Every difference found, in order.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when nothing differs.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn bad(&mut self, seq: Option<i64>, problem: String) {
        if let Some(s) = seq
            && self.first_bad_seq.is_none_or(|f| s < f)
        {
            self.first_bad_seq = Some(s);
        }
        self.problems.push(problem);
    }
}

/// Reads the whole ledger in pages and checks it, in one read transaction: the entries, the
/// fund row and the donations are one consistent snapshot however many gifts a running server
/// records meanwhile (REPEATABLE READ on PostgreSQL, where each statement of a plain
/// transaction would otherwise see the latest commit; on SQLite a read transaction in WAL mode
/// keeps the snapshot of its first read until it ends).
pub fn verify(conn: &mut DbConn) -> Result<VerifyReport, AppError> {
    conn.transaction(|conn| {
        if let DbConn::Pg(pg) = conn {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(pg)?;
        }
        verify_snapshot(conn)
    })
}

/// The checks of [`verify`] on the caller's transaction (restore runs them on the rows it has
/// just inserted, before it commits).
pub fn verify_snapshot(conn: &mut DbConn) -> Result<VerifyReport, AppError> {
    let mut report = VerifyReport::default();
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut last: Option<LedgerEntryRow> = None;
    loop {
        let after = last.as_ref().map_or(0, |e| e.seq);
        let page = entries_after(conn, after, PAGE)?;
        if page.is_empty() {
            break;
        }
        for e in page {
            check_entry(
                &mut report,
                &e,
                &prev_hash,
                last.as_ref().map_or(0, |l| l.seq),
            );
            report.entries += 1;
            check_disbursed(&mut report, &e, last.as_ref());
            if e.kind == "period" {
                let stated: serde_json::Value =
                    serde_json::from_str(&e.public_memo).unwrap_or_default();
                match stated["id"].as_i64() {
                    Some(id) => {
                        report.periods.insert(id, stated);
                    }
                    None => report.bad(
                        Some(e.seq),
                        format!("entry {}: a period entry that names no period", e.seq),
                    ),
                }
            }
            report.raised_minor += e.amount_minor;
            report.donation_count += e.count_delta;
            if e.raised_after_minor != report.raised_minor {
                report.bad(
                    Some(e.seq),
                    format!(
                        "entry {}: raised_after {} but the entries before it sum to {}",
                        e.seq, e.raised_after_minor, report.raised_minor
                    ),
                );
            }
            prev_hash.clone_from(&e.hash);
            last = Some(e);
        }
    }
    check_fund(conn, &mut report, last.as_ref())?;
    check_donations(conn, &mut report)?;
    check_disbursements(conn, &mut report)?;
    check_periods(conn, &mut report)?;
    Ok(report)
}

fn check_entry(report: &mut VerifyReport, e: &LedgerEntryRow, prev_hash: &str, prev_seq: i64) {
    if e.seq != prev_seq + 1 {
        report.bad(
            Some(e.seq),
            format!(
                "entry {}: expected seq {} (an entry is missing)",
                e.seq,
                prev_seq + 1
            ),
        );
    }
    if e.prev_hash != prev_hash {
        report.bad(
            Some(e.seq),
            format!(
                "entry {}: prev_hash does not match the entry before it",
                e.seq
            ),
        );
    }
    if entry_hash(&e.prev_hash, &e.fields()).as_deref() != Some(e.hash.as_str()) {
        report.bad(
            Some(e.seq),
            format!(
                "entry {}: hash does not match its contents (altered)",
                e.seq
            ),
        );
    }
}

/// The money paid out moves only by disbursements (up) and their voids (down), which move
/// raised not at all; and no entry goes back to hash version 1 once version 2 began.
fn check_disbursed(report: &mut VerifyReport, e: &LedgerEntryRow, prev: Option<&LedgerEntryRow>) {
    let before = prev.map_or(0, |p| p.disbursed_after_minor);
    let delta = e.disbursed_after_minor - before;
    if !crate::domain::moves_paid_out_rightly(&e.kind, e.amount_minor, delta) {
        report.bad(
            Some(e.seq),
            format!(
                "entry {}: a {} entry moves the money paid out by {delta} (and raised by {})",
                e.seq, e.kind, e.amount_minor
            ),
        );
    }
    if e.hash_version < prev.map_or(1, |p| p.hash_version) {
        report.bad(
            Some(e.seq),
            format!(
                "entry {}: hash version went back to {}",
                e.seq, e.hash_version
            ),
        );
    }
    report.disbursed_minor = e.disbursed_after_minor;
}

/// Every period a `period` entry states is, in the table, as its last entry says: so the
/// allocation (coverage) computed from the table is the one the chain records. Periods made
/// before the public ledger have no entry and are not checked here.
fn check_periods(conn: &mut DbConn, report: &mut VerifyReport) -> Result<(), AppError> {
    let fund = load_fund_row(conn)?;
    let Some(currency) = crate::money::Currency::from_code(&fund.currency) else {
        return Ok(());
    };
    for p in super::state::load_periods(conn)? {
        let Some(stated) = report.periods.get(&p.id) else {
            continue;
        };
        let table = serde_json::json!({
            "budget": currency.format(p.budget_minor),
            "ends_on": p.ends_on,
            "id": p.id,
            "label": p.label,
            "starts_on": p.starts_on,
        });
        if &table != stated {
            let problem = format!(
                "period {} is {table} but its last ledger entry says {stated}",
                p.id
            );
            report.bad(None, problem);
        }
    }
    Ok(())
}

/// The disbursements not voided add up to what the ledger says was paid out.
fn check_disbursements(conn: &mut DbConn, report: &mut VerifyReport) -> Result<(), AppError> {
    use crate::db::schema::disbursements;
    // A few hundred rows in a fund's life: summed here, exactly.
    let standing: i64 = disbursements::table
        .filter(disbursements::voided_at.is_null())
        .filter(disbursements::state.eq("recorded"))
        .select(disbursements::amount_minor)
        .load::<i64>(conn)?
        .into_iter()
        .sum();
    if standing != report.disbursed_minor {
        report.bad(
            None,
            format!(
                "disbursements not voided sum to {standing} but the ledger says {} was paid out",
                report.disbursed_minor
            ),
        );
    }
    Ok(())
}

fn check_fund(
    conn: &mut DbConn,
    report: &mut VerifyReport,
    last: Option<&LedgerEntryRow>,
) -> Result<(), AppError> {
    let fund = load_fund_row(conn)?;
    let Some(last) = last else {
        report.bad(None, "the ledger has no entries".into());
        return Ok(());
    };
    let checks = [
        ("raised", fund.raised_minor, report.raised_minor),
        ("donation_count", fund.donation_count, report.donation_count),
        ("ledger_seq", fund.ledger_seq, last.seq),
        ("target", fund.target_minor, last.target_after_minor),
    ];
    for (what, stored, computed) in checks {
        if stored != computed {
            report.bad(
                None,
                format!("fund {what} is {stored} but the ledger says {computed}"),
            );
        }
    }
    if fund.ledger_head != last.hash {
        report.bad(
            None,
            "fund ledger_head is not the hash of the last entry".into(),
        );
    }
    if fund.intake_state != last.intake_after {
        report.bad(
            None,
            format!(
                "fund intake is {} but the ledger says {}",
                fund.intake_state, last.intake_after
            ),
        );
    }
    Ok(())
}

/// One donation's ledger entries, summed.
#[derive(QueryableByName)]
struct EntrySum {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    donation_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    first_seq: i64,
}

/// Each donation against the sum of its entries, a page of donations at a time with the sums
/// of that id range (the `ledger_entries (donation_id)` index), so memory stays flat however
/// many donations; then that no entry names a donation that does not exist.
fn check_donations(conn: &mut DbConn, report: &mut VerifyReport) -> Result<(), AppError> {
    let mut after = 0_i64;
    loop {
        let page: Vec<(i64, String, i64, i64, i64)> = donations::table
            .filter(donations::id.gt(after))
            .order(donations::id.asc())
            .limit(PAGE)
            .select((
                donations::id,
                donations::status,
                donations::amount_minor,
                donations::refunded_minor,
                donations::disputed_minor,
            ))
            .load(conn)?;
        let Some(last) = page.last() else { break };
        let (from, to) = (after, last.0);
        after = last.0;
        // Integers of our own, so written into the text (one form for both engines).
        let sums: std::collections::BTreeMap<i64, (i64, i64)> = diesel::sql_query(format!(
            "SELECT donation_id, CAST(SUM(amount_minor) AS BIGINT) AS total, \
             MIN(seq) AS first_seq FROM ledger_entries \
             WHERE donation_id > {from} AND donation_id <= {to} GROUP BY donation_id"
        ))
        .load::<EntrySum>(conn)?
        .into_iter()
        .map(|s| (s.donation_id, (s.total, s.first_seq)))
        .collect();
        for (id, status, amount, refunded, disputed) in page {
            let expected = if status == "succeeded" {
                amount - refunded - disputed
            } else {
                0
            };
            let (in_ledger, first_seq) = sums.get(&id).copied().unwrap_or((0, 0));
            if expected != in_ledger {
                report.bad(
                    (first_seq > 0).then_some(first_seq),
                    format!(
                        "donation {id}: the donations table counts {expected} minor units but its ledger entries (from entry {first_seq}) sum to {in_ledger}"
                    ),
                );
            }
        }
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let orphans = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM ledger_entries e WHERE e.donation_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM donations d WHERE d.id = e.donation_id)",
    )
    .get_result::<Count>(conn)?;
    if orphans.n > 0 {
        report.bad(
            None,
            "ledger entries name donations that do not exist".into(),
        );
    }
    Ok(())
}
