ALTER TABLE refund_requests DROP COLUMN outside_stripe;
-- Refused while a refund is pending at Stripe: the old CHECK cannot hold it.
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_state_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_state_check
    CHECK (state IN ('requested', 'done', 'failed', 'pending_approval', 'rejected'));
ALTER TABLE donations DROP COLUMN payment_method_type;
