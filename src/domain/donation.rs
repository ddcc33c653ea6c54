//! What a donation can be: its statuses and the ways it arrives.

/// Every status a donation can have.
pub const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "canceled"];
/// Every way a donation can arrive.
pub const METHODS: [&str; 5] = ["card", "check", "wire", "cash", "other"];
