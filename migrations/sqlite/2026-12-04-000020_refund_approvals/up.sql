-- Two-person approval of large refunds: a request can wait for a second admin
-- ('pending_approval') and be rejected ('rejected'); `approved_by` names the second admin.
-- SQLite cannot change a CHECK, so the table is rebuilt (no table refers to it; the ids and
-- the AUTOINCREMENT counter are kept).
CREATE TABLE refund_requests_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    donation_id BIGINT NOT NULL REFERENCES donations (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('requested', 'done', 'failed', 'pending_approval', 'rejected')),
    stripe_refund_id TEXT,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    approved_by TEXT
);
INSERT INTO refund_requests_new (id, idempotency_key, request_hash, donation_id, amount_minor,
    actor, reason, state, stripe_refund_id, status_code, response_body, created_at, updated_at)
SELECT id, idempotency_key, request_hash, donation_id, amount_minor, actor, reason, state,
    stripe_refund_id, status_code, response_body, created_at, updated_at
FROM refund_requests;
DROP TABLE refund_requests;
ALTER TABLE refund_requests_new RENAME TO refund_requests;
CREATE INDEX refund_requests_donation ON refund_requests (donation_id, state);

-- The audit trail is append-only, like the ledger's entries.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
