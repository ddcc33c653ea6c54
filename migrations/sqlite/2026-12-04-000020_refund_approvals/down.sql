DROP TRIGGER IF EXISTS audit_log_no_delete;
DROP TRIGGER IF EXISTS audit_log_no_update;
CREATE TABLE refund_requests_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    donation_id BIGINT NOT NULL REFERENCES donations (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('requested', 'done', 'failed')),
    stripe_refund_id TEXT,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO refund_requests_old SELECT id, idempotency_key, request_hash, donation_id,
    amount_minor, actor, reason, state, stripe_refund_id, status_code, response_body,
    created_at, updated_at
FROM refund_requests WHERE state IN ('requested', 'done', 'failed');
DROP TABLE refund_requests;
ALTER TABLE refund_requests_old RENAME TO refund_requests;
CREATE INDEX refund_requests_donation ON refund_requests (donation_id, state);
