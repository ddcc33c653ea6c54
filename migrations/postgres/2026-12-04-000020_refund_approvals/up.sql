-- Two-person approval of large refunds: a request can wait for a second admin
-- ('pending_approval') and be rejected ('rejected'); `approved_by` names the second admin.
-- Adding a nullable column rewrites nothing; the state CHECK is replaced (refund_requests is
-- a small table: the check's scan is brief).
ALTER TABLE refund_requests ADD COLUMN approved_by TEXT;
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_state_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_state_check
    CHECK (state IN ('requested', 'done', 'failed', 'pending_approval', 'rejected'));

-- The audit trail is append-only, like the ledger's entries.
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
