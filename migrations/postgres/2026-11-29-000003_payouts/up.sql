-- Stripe payouts and their reconciliation against the ledger.
CREATE TABLE payouts (
    id TEXT PRIMARY KEY NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    arrival_date BIGINT,
    created BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    reconciled_at TIMESTAMP,
    matched INTEGER NOT NULL DEFAULT 0,
    missing_in_ledger INTEGER NOT NULL DEFAULT 0,
    missing_in_stripe INTEGER NOT NULL DEFAULT 0,
    differences INTEGER NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT ''
);
ALTER TABLE donations ADD COLUMN payout_id TEXT;
