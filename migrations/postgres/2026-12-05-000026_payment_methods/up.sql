-- Every way donors pay (issue 20).
-- `payment_method_type`: how a Stripe payment was made, as its charge names it (`card`,
-- `us_bank_account`, `alipay`, `wechat_pay`, `link`, or a card wallet such as `apple_pay`);
-- NULL for offline gifts and for payments recorded before it was kept. Nullable: nothing is
-- rewritten.
ALTER TABLE donations ADD COLUMN payment_method_type TEXT;
-- A refund request gains the state 'pending': Stripe made the refund but has not finished it
-- (Alipay and WeChat Pay refund asynchronously); its amount stays held back until Stripe says
-- `succeeded` (then 'done') or `failed` (then 'failed').
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_state_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_state_check
    CHECK (state IN ('requested', 'pending', 'done', 'failed', 'pending_approval', 'rejected'));
-- `outside_stripe`: the money goes back outside Stripe (a check, for a payment past its
-- method's refund window): recorded, never asked of Stripe, also after an approval. A
-- constant default: no rewrite.
ALTER TABLE refund_requests ADD COLUMN outside_stripe BOOLEAN NOT NULL DEFAULT FALSE;
