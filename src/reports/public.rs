//! The public projection of the ledger: the one list of fields anyone may see. It carries
//! every field an entry's hash covers (the internal memo only by its SHA-256), so anyone can
//! recompute the chain (`crowdledger verify --public`), and never an email, address, staff
//! name, refund reason, reference or internal memo. For a gift, the donor's public name:
//! their name unless they gave anonymously (or `PUBLIC_DONOR_NAMES=off`); never a donor id.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::{EntryFields, Memo, entry_hash};

use crate::db::DbConn;
use crate::db::models::LedgerEntryRow;
use crate::db::schema::{donations, ledger_entries};
use crate::domain::memo_digest;
use crate::error::AppError;
use crate::money::{Currency, Money};

/// The timestamp format the hash covers.
pub const HASHED_TIME: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// One ledger entry as anyone may see it: the fields its hash covers (and the chain), then
/// what a reader wants besides.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicEntry {
    /// What the hash covers, and the chain.
    #[serde(flatten)]
    pub hashed: HashedEntry,
    /// Raised after, as money.
    pub raised_after: Money,
    /// Raised less disbursed after the entry, as money.
    pub balance_after: Money,
    /// What moved: raised for gifts, refunds and disputes; the money paid out for
    /// disbursements and their voids.
    pub amount: Money,
    /// For a gift: the donor's public name; none when anonymous.
    pub donor: Option<String>,
}

/// Every field of [`PublicEntry`], as the API names them (a test holds the API to this list).
pub const PUBLIC_FIELDS: &[&str] = &[
    "seq",
    "created_at",
    "kind",
    "donation_id",
    "amount_minor",
    "count_delta",
    "raised_after_minor",
    "target_after_minor",
    "intake_after",
    "disbursed_after_minor",
    "public_memo",
    "memo_digest",
    "hash_version",
    "prev_hash",
    "hash",
    "raised_after",
    "balance_after",
    "amount",
    "donor",
];

/// Which way a page runs.
#[derive(Debug, Clone, Copy)]
pub enum PageFrom {
    /// Oldest first, after this seq (0: from the start).
    After(i64),
    /// Newest first, before this seq (`i64::MAX`: from the head).
    Before(i64),
}

/// One page of the public ledger (one index range read, plus the entry before it and the
/// names of the page's gifts by primary key).
pub fn page(
    conn: &mut DbConn,
    from: PageFrom,
    limit: i64,
    currency: Currency,
    names: bool,
) -> Result<Vec<PublicEntry>, AppError> {
    let mut rows: Vec<LedgerEntryRow> = match from {
        PageFrom::After(seq) => ledger_entries::table
            .filter(ledger_entries::seq.gt(seq))
            .order(ledger_entries::seq.asc())
            .limit(limit)
            .select(LedgerEntryRow::as_select())
            .load(conn)?,
        PageFrom::Before(seq) => ledger_entries::table
            .filter(ledger_entries::seq.lt(seq))
            .order(ledger_entries::seq.desc())
            .limit(limit)
            .select(LedgerEntryRow::as_select())
            .load(conn)?,
    };
    rows.sort_by_key(|r| r.seq);
    let Some(first) = rows.first().map(|r| r.seq) else {
        return Ok(Vec::new());
    };
    let mut disbursed_before: i64 = ledger_entries::table
        .find(first - 1)
        .select(ledger_entries::disbursed_after_minor)
        .first(conn)
        .optional()?
        .unwrap_or(0);
    let gift_ids: Vec<i64> = rows
        .iter()
        .filter(|r| r.kind == "donation")
        .filter_map(|r| r.donation_id)
        .collect();
    let givers: std::collections::HashMap<i64, (String, bool)> = if names && !gift_ids.is_empty() {
        donations::table
            .filter(donations::id.eq_any(&gift_ids))
            .select((donations::id, donations::donor_name, donations::anonymous))
            .load::<(i64, String, bool)>(conn)?
            .into_iter()
            .map(|(id, name, anon)| (id, (name, anon)))
            .collect()
    } else {
        std::collections::HashMap::new()
    };
    let mut out: Vec<PublicEntry> = rows
        .into_iter()
        .map(|r| {
            let moved_out = r.disbursed_after_minor - disbursed_before;
            disbursed_before = r.disbursed_after_minor;
            let amount = if r.kind.starts_with("disbursement") {
                moved_out
            } else {
                r.amount_minor
            };
            let donor = (r.kind == "donation")
                .then(|| r.donation_id.and_then(|id| givers.get(&id)))
                .flatten()
                .filter(|(name, anon)| !anon && !name.trim().is_empty())
                .map(|(name, _)| name.clone());
            PublicEntry {
                raised_after: Money::new(r.raised_after_minor, currency),
                balance_after: Money::new(r.raised_after_minor - r.disbursed_after_minor, currency),
                amount: Money::new(amount, currency),
                donor,
                hashed: HashedEntry::from(r),
            }
        })
        .collect();
    if matches!(from, PageFrom::Before(_)) {
        out.reverse();
    }
    Ok(out)
}

/// The fields of a public entry that its hash covers, and the chain: all `verify --public`
/// reads.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HashedEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written, exactly as hashed (UTC, microseconds).
    pub created_at: String,
    /// `donation`, `refund`, `dispute`, `dispute_won`, `intake`, `target`, `disbursement`,
    /// `disbursement_void`, `period`, `fund_created`.
    pub kind: String,
    /// The gift it concerns (a refund names the gift it refunds).
    pub donation_id: Option<i64>,
    /// Change of raised, minor units.
    pub amount_minor: i64,
    /// Change of the donation count.
    pub count_delta: i64,
    /// Raised after the entry, minor units.
    pub raised_after_minor: i64,
    /// Target after the entry, minor units.
    pub target_after_minor: i64,
    /// Intake after the entry.
    pub intake_after: String,
    /// Money paid out after the entry, minor units.
    pub disbursed_after_minor: i64,
    /// What the entry says publicly (JSON for disbursements and periods).
    pub public_memo: String,
    /// SHA-256 of the internal memo (never the memo itself).
    pub memo_digest: String,
    /// 1 (written before the public ledger: its hash needs the internal memo, so only its
    /// link to the next entry can be checked publicly) or 2 (recomputable from these fields).
    pub hash_version: i32,
    /// The hash of the entry before.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl From<LedgerEntryRow> for HashedEntry {
    fn from(r: LedgerEntryRow) -> HashedEntry {
        HashedEntry {
            seq: r.seq,
            created_at: r.created_at.format(HASHED_TIME).to_string(),
            memo_digest: memo_digest(&r.memo),
            kind: r.kind,
            donation_id: r.donation_id,
            amount_minor: r.amount_minor,
            count_delta: r.count_delta,
            raised_after_minor: r.raised_after_minor,
            target_after_minor: r.target_after_minor,
            intake_after: r.intake_after,
            disbursed_after_minor: r.disbursed_after_minor,
            public_memo: r.public_memo,
            hash_version: r.hash_version,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl HashedEntry {
    /// The entry's hash recomputed from these fields (`None` for version 1: its hash needs
    /// the internal memo; or a time that is not in the hashed format).
    pub fn recomputed(&self) -> Option<String> {
        let created_at =
            chrono::NaiveDateTime::parse_from_str(&self.created_at, HASHED_TIME).ok()?;
        if created_at.format(HASHED_TIME).to_string() != self.created_at {
            return None;
        }
        entry_hash(
            &self.prev_hash,
            &EntryFields {
                version: self.hash_version,
                seq: self.seq,
                created_at,
                kind: &self.kind,
                donation_id: self.donation_id,
                amount_minor: self.amount_minor,
                count_delta: self.count_delta,
                raised_after_minor: self.raised_after_minor,
                target_after_minor: self.target_after_minor,
                intake_after: &self.intake_after,
                disbursed_after_minor: self.disbursed_after_minor,
                public_memo: &self.public_memo,
                memo: Memo::Digest(&self.memo_digest),
            },
        )
    }
}
