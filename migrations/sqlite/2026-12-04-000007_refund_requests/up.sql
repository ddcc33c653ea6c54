-- A refund asked of the admin route, written through the ledger writer BEFORE Stripe is
-- called: its id names the Stripe idempotency key (so a retry, on any instance, asks Stripe
-- for the same refund), its Idempotency-Key and request fingerprint answer a repeated request
-- with the stored answer, and while it is 'requested' its amount is held back from other
-- refunds of the donation (the writer serialises that check, across instances too).
CREATE TABLE refund_requests (
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
CREATE INDEX refund_requests_donation ON refund_requests (donation_id, state);
