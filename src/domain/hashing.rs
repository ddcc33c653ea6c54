//! The ledger's hash chain: each entry's hash covers the previous hash and the entry's
//! canonical fields, so changing, removing or reordering any entry breaks every later hash.

use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of a ledger entry that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields<'a> {
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
    /// Human-readable note.
    pub memo: &'a str,
}

/// SHA-256 (hex) over the previous hash and the entry's canonical JSON array.
pub fn entry_hash(prev_hash: &str, e: &EntryFields<'_>) -> String {
    let canonical = serde_json::json!([
        e.seq,
        e.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        e.kind,
        e.donation_id,
        e.amount_minor,
        e.count_delta,
        e.raised_after_minor,
        e.target_after_minor,
        e.intake_after,
        e.memo,
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(amount: i64) -> EntryFields<'static> {
        EntryFields {
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
            memo: "check #1",
        }
    }

    #[test]
    fn any_field_or_predecessor_changes_the_hash() {
        let h = entry_hash(GENESIS_HASH, &fields(500));
        assert_eq!(h.len(), 64);
        assert_eq!(h, entry_hash(GENESIS_HASH, &fields(500)));
        assert_ne!(h, entry_hash(GENESIS_HASH, &fields(501)));
        assert_ne!(h, entry_hash(&h, &fields(500)));
    }
}
