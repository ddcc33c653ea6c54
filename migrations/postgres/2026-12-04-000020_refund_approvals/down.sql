DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
DROP FUNCTION IF EXISTS audit_log_append_only();
DELETE FROM refund_requests WHERE state IN ('pending_approval', 'rejected');
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_state_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_state_check
    CHECK (state IN ('requested', 'done', 'failed'));
ALTER TABLE refund_requests DROP COLUMN approved_by;
