-- A ledger anyone can check. Entries written from now on use hash version 2, whose canonical
-- fields are all public: the internal memo is covered by its SHA-256 only, and a public memo,
-- the money paid out so far (`disbursed_after_minor`) and the version join the hash. Entries
-- already written keep version 1 and their hashes: nothing is re-chained. Constant defaults:
-- no row is rewritten (the append-only triggers never fire).
ALTER TABLE ledger_entries ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE ledger_entries ADD COLUMN disbursed_after_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN public_memo TEXT NOT NULL DEFAULT '';

-- Money paid out of the fund (to counsel, for a period's fees). Each is a ledger entry of kind
-- `disbursement` (`entry_seq`); a void is a reversing entry (`void_entry_seq`), never an edit
-- of the amount. Above APPROVAL_THRESHOLD it waits for a second admin (`pending_approval`)
-- and reaches the ledger only when approved.
CREATE TABLE disbursements (
    id BIGSERIAL PRIMARY KEY,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    payee TEXT NOT NULL,
    period_id BIGINT REFERENCES periods (id),
    paid_on DATE NOT NULL,
    reference TEXT NOT NULL,
    memo TEXT NOT NULL,
    public_memo TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    -- Its ledger entry; none while it waits for a second admin (above APPROVAL_THRESHOLD).
    entry_seq BIGINT,
    voided_at TIMESTAMP,
    voided_by TEXT,
    void_entry_seq BIGINT,
    state TEXT NOT NULL DEFAULT 'recorded'
        CHECK (state IN ('recorded', 'pending_approval', 'rejected')),
    approved_by TEXT,
    decided_at TIMESTAMP
);
CREATE INDEX disbursements_period ON disbursements (period_id);
