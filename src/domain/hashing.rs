//! The ledger's hash chain: each entry's hash covers the previous hash and the entry's
//! canonical fields, so changing, removing or reordering any entry breaks every later hash.
//!
//! Two versions. Version 1 (entries written before the public ledger) covers the internal
//! memo as written, so only the database can recompute it. Version 2 covers only what the
//! public ledger shows: the memo enters as its SHA-256 (`memo_digest`), beside a public memo
//! and the money paid out so far; so anyone holding the public rows recomputes every hash.

use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash version of entries written now.
pub const HASH_VERSION: i32 = 2;

/// Whether an entry of `kind` moves raised by `raised_delta` and the money paid out by
/// `paid_out_delta` as the ledger allows: only a disbursement raises what was paid out and
/// only its void lowers it, neither moves raised, and nothing else touches the paid out.
/// (`verify` on the database and `verify --public` on the served pages both hold entries to it.)
pub fn moves_paid_out_rightly(kind: &str, raised_delta: i64, paid_out_delta: i64) -> bool {
    match kind {
        "disbursement" => paid_out_delta > 0 && raised_delta == 0,
        "disbursement_void" => paid_out_delta < 0 && raised_delta == 0,
        _ => paid_out_delta == 0,
    }
}

/// The SHA-256 (hex) of an internal memo, as version 2 hashes and the public ledger show it.
pub fn memo_digest(memo: &str) -> String {
    hex::encode(Sha256::digest(memo.as_bytes()))
}

/// The fields of a ledger entry that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields<'a> {
    /// 1 or 2 (see the module's comment).
    pub version: i32,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written, UTC, microsecond precision.
    pub created_at: chrono::NaiveDateTime,
    /// Kind of movement (`donation`, `refund`, `intake`, ...).
    pub kind: &'a str,
    /// Donation concerned, if any.
    pub donation_id: Option<i64>,
    /// Signed change of raised, minor units.
    pub amount_minor: i64,
    /// Change of donation_count.
    pub count_delta: i64,
    /// Raised after this entry.
    pub raised_after_minor: i64,
    /// Target after this entry.
    pub target_after_minor: i64,
    /// Intake state after this entry.
    pub intake_after: &'a str,
    /// Money paid out of the fund after this entry, minor units (version 2).
    pub disbursed_after_minor: i64,
    /// What the public ledger says of the entry (version 2).
    pub public_memo: &'a str,
    /// Internal note: version 1 hashes it as written, version 2 by [`memo_digest`].
    pub memo: Memo<'a>,
}

/// An entry's internal memo: as written (the database knows it), or only its digest (the
/// public ledger's reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memo<'a> {
    /// The memo itself.
    Text(&'a str),
    /// Its SHA-256, hex.
    Digest(&'a str),
}

/// SHA-256 (hex) over the previous hash and the entry's canonical JSON array; `None` for a
/// version 1 entry known only by its memo's digest (the public cannot recompute those).
pub fn entry_hash(prev_hash: &str, e: &EntryFields<'_>) -> Option<String> {
    let created_at = e.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let canonical = match (e.version, &e.memo) {
        (1, Memo::Text(memo)) => serde_json::json!([
            e.seq,
            created_at,
            e.kind,
            e.donation_id,
            e.amount_minor,
            e.count_delta,
            e.raised_after_minor,
            e.target_after_minor,
            e.intake_after,
            memo,
        ]),
        (1, Memo::Digest(_)) => return None,
        (_, memo) => {
            let digest = match memo {
                Memo::Text(m) => memo_digest(m),
                Memo::Digest(d) => (*d).to_owned(),
            };
            serde_json::json!([
                "v2",
                e.seq,
                created_at,
                e.kind,
                e.donation_id,
                e.amount_minor,
                e.count_delta,
                e.raised_after_minor,
                e.target_after_minor,
                e.intake_after,
                e.disbursed_after_minor,
                e.public_memo,
                digest,
            ])
        }
    };
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    Some(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(amount: i64) -> EntryFields<'static> {
        EntryFields {
            version: 1,
            disbursed_after_minor: 0,
            public_memo: "",
            seq: 1,
            created_at: chrono::DateTime::from_timestamp(1_600_000_000, 123_456_000)
                .expect("valid")
                .naive_utc(),
            kind: "donation",
            donation_id: Some(7),
            amount_minor: amount,
            count_delta: 1,
            raised_after_minor: amount,
            target_after_minor: 10_000,
            intake_after: "open",
            memo: Memo::Text("check #1"),
        }
    }

    fn hash(prev: &str, f: &EntryFields<'_>) -> String {
        entry_hash(prev, f).expect("computable")
    }

    #[test]
    fn any_field_or_predecessor_changes_the_hash() {
        let h = hash(GENESIS_HASH, &fields(500));
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash(GENESIS_HASH, &fields(500)));
        assert_ne!(h, hash(GENESIS_HASH, &fields(501)));
        assert_ne!(h, hash(&h, &fields(500)));
    }

    #[test]
    fn version_1_hashes_are_unchanged() {
        // The hash of this entry as the first version computed it, before version 2 existed.
        assert_eq!(
            hash(GENESIS_HASH, &fields(500)),
            "a5d9b3e6ffa7ce65d0727ee1919bc35b431b81ab1d667373435150200467b9c4"
        );
    }

    #[test]
    fn version_2_is_recomputed_from_the_memo_digest_and_covers_the_public_fields() {
        let mut v2 = fields(500);
        v2.version = 2;
        let from_memo = hash(GENESIS_HASH, &v2);
        let digest = memo_digest("check #1");
        let public = EntryFields {
            memo: Memo::Digest(&digest),
            ..v2.clone()
        };
        assert_eq!(hash(GENESIS_HASH, &public), from_memo);
        assert_ne!(
            from_memo,
            hash(GENESIS_HASH, &fields(500)),
            "versions differ"
        );
        for changed in [
            EntryFields {
                disbursed_after_minor: 1,
                ..v2.clone()
            },
            EntryFields {
                public_memo: "x",
                ..v2.clone()
            },
            EntryFields {
                memo: Memo::Text("check #2"),
                ..v2.clone()
            },
        ] {
            assert_ne!(hash(GENESIS_HASH, &changed), from_memo);
        }
        let v1_public = EntryFields {
            version: 1,
            memo: Memo::Digest(&digest),
            ..v2
        };
        assert_eq!(entry_hash(GENESIS_HASH, &v1_public), None);
    }
}
