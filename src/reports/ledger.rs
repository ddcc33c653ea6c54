//! The ledger export: every entry with its hash, refunds and disputes as their own negative
//! (reversal) rows.

use super::csv_out::{ChunkedCsv, text_cell};
use super::donations::iso;
use super::{Filters, PAGE};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ledger::{FundState, entries_after};

const HEADER: [&str; 12] = [
    "seq",
    "created_at",
    "kind",
    "donation_id",
    "amount",
    "count_delta",
    "raised_after",
    "target_after",
    "intake_after",
    "memo",
    "prev_hash",
    "hash",
];

/// Streams the ledger export into `out`.
pub fn export<F: FnMut(Vec<u8>) -> bool>(
    conn: &mut DbConn,
    filters: &Filters,
    out: &mut ChunkedCsv<F>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), AppError> {
    let c = FundState::load(conn)?.currency;
    if !out.row(HEADER) {
        return Ok(());
    }
    let mut after = 0_i64;
    let mut written = 0_u64;
    loop {
        let page = entries_after(conn, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            if !filters.covers(e.created_at.date()) {
                continue;
            }
            written += 1;
            let ok = out.row([
                e.seq.to_string(),
                iso(e.created_at),
                e.kind,
                e.donation_id.map(|d| d.to_string()).unwrap_or_default(),
                c.format(e.amount_minor),
                e.count_delta.to_string(),
                c.format(e.raised_after_minor),
                c.format(e.target_after_minor),
                e.intake_after,
                text_cell(&e.memo).into_owned(),
                e.prev_hash,
                e.hash,
            ]);
            if !ok {
                return Ok(());
            }
        }
        progress(written);
    }
    out.flush();
    Ok(())
}
