-- Every way donors pay (issue 20).
-- `payment_method_type`: how a Stripe payment was made, as its charge names it (`card`,
-- `us_bank_account`, `alipay`, `wechat_pay`, `link`, or a card wallet such as `apple_pay`);
-- NULL for offline gifts and for payments recorded before it was kept. Nullable: nothing is
-- rewritten.
ALTER TABLE donations ADD COLUMN payment_method_type TEXT;
-- A refund request gains the state 'pending': Stripe made the refund but has not finished it
-- (Alipay and WeChat Pay refund asynchronously); its amount stays held back until Stripe says
-- `succeeded` (then 'done') or `failed` (then 'failed'). SQLite cannot change a CHECK, so the
-- table is rebuilt (no table refers to it; ids and the AUTOINCREMENT counter are kept).
-- `outside_stripe`: the money goes back outside Stripe (a check, for a payment past its
-- method's refund window): recorded, never asked of Stripe, also after an approval.
CREATE TABLE refund_requests_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    donation_id BIGINT NOT NULL REFERENCES donations (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('requested', 'pending', 'done', 'failed', 'pending_approval', 'rejected')),
    stripe_refund_id TEXT,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    approved_by TEXT,
    outside_stripe BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO refund_requests_new (id, idempotency_key, request_hash, donation_id, amount_minor,
    actor, reason, state, stripe_refund_id, status_code, response_body, created_at, updated_at,
    approved_by)
SELECT id, idempotency_key, request_hash, donation_id, amount_minor, actor, reason, state,
    stripe_refund_id, status_code, response_body, created_at, updated_at, approved_by
FROM refund_requests;
DROP TABLE refund_requests;
ALTER TABLE refund_requests_new RENAME TO refund_requests;
CREATE INDEX refund_requests_donation ON refund_requests (donation_id, state);
