-- Refused while a refund is pending at Stripe: the old CHECK cannot hold it (the INSERT
-- fails and the transaction rolls back).
CREATE TABLE refund_requests_old (
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
INSERT INTO refund_requests_old SELECT id, idempotency_key, request_hash, donation_id,
    amount_minor, actor, reason, state, stripe_refund_id, status_code, response_body,
    created_at, updated_at, approved_by
FROM refund_requests;
DROP TABLE refund_requests;
ALTER TABLE refund_requests_old RENAME TO refund_requests;
CREATE INDEX refund_requests_donation ON refund_requests (donation_id, state);
ALTER TABLE donations DROP COLUMN payment_method_type;
