//! What a donation can be: its statuses and the ways it arrives.

/// Every status a donation can have.
pub const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "canceled"];
/// What a donor's page is told of a payment: [`STATUSES`], and `processing` for a pending
/// payment whose money is on its way (a bank debit, up to 4 business days).
pub const PAYMENT_STATUSES: [&str; 5] =
    ["pending", "processing", "succeeded", "failed", "canceled"];
/// Every way a donation can arrive.
pub const METHODS: [&str; 5] = ["card", "check", "wire", "cash", "other"];
