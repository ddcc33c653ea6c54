-- crowdledger schema, PostgreSQL dialect. Amounts are BIGINT minor units.
CREATE TABLE funds (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    target_minor BIGINT NOT NULL CHECK (target_minor > 0),
    raised_minor BIGINT NOT NULL DEFAULT 0,
    donation_count BIGINT NOT NULL DEFAULT 0,
    reserved_minor BIGINT NOT NULL DEFAULT 0,
    cap_mode TEXT NOT NULL,
    intake_state TEXT NOT NULL CHECK (intake_state IN ('open', 'paused', 'closed')),
    intake_message TEXT NOT NULL DEFAULT '',
    intake_changed_at TIMESTAMP NOT NULL,
    ledger_seq BIGINT NOT NULL DEFAULT 0,
    last_donation_id BIGINT NOT NULL DEFAULT 0,
    ledger_head TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE periods (
    id BIGSERIAL PRIMARY KEY,
    label TEXT NOT NULL,
    starts_on DATE NOT NULL,
    ends_on DATE NOT NULL,
    budget_minor BIGINT NOT NULL CHECK (budget_minor > 0),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE donations (
    -- Assigned by the ledger writer from funds.last_donation_id, so a batch inserts its
    -- donations with one multi-row INSERT.
    id BIGINT PRIMARY KEY,
    method TEXT NOT NULL CHECK (method IN ('card', 'check', 'wire', 'cash', 'other')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    disputed_minor BIGINT NOT NULL DEFAULT 0,
    fee_minor BIGINT,
    net_minor BIGINT,
    currency TEXT NOT NULL,
    donor_name TEXT NOT NULL,
    email TEXT,
    anonymous BOOLEAN NOT NULL DEFAULT FALSE,
    locale TEXT NOT NULL,
    reference TEXT,
    received_on DATE,
    payment_intent_id TEXT UNIQUE,
    after_close BOOLEAN NOT NULL DEFAULT FALSE,
    recorded_by TEXT,
    created_at TIMESTAMP NOT NULL,
    succeeded_at TIMESTAMP
);
CREATE INDEX donations_created_at ON donations (created_at);
CREATE INDEX donations_status ON donations (status, id);

CREATE TABLE ledger_entries (
    seq BIGINT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    donation_id BIGINT REFERENCES donations (id),
    amount_minor BIGINT NOT NULL,
    count_delta BIGINT NOT NULL,
    raised_after_minor BIGINT NOT NULL,
    target_after_minor BIGINT NOT NULL,
    intake_after TEXT NOT NULL,
    memo TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX ledger_entries_donation ON ledger_entries (donation_id);
CREATE INDEX ledger_entries_created_at ON ledger_entries (created_at);

-- Append-only: the ledger is never edited in place (verify still catches edits made by
-- someone who drops these triggers).
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'treasurer')),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE idempotency_keys (
    scope_key TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    donation_id BIGINT REFERENCES donations (id),
    locale TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (sent_at, next_attempt_at);
