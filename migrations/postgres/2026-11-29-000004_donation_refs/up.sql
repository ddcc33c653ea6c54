-- Ledger entries and outbox rows name their donation. As foreign keys, these two references
-- cost the ledger writer's one backend a row lock (FOR KEY SHARE, with its WAL record) and a
-- query for every row inserted: about a quarter of a batch of webhooks (BENCHMARKS.md).
-- The same rules are now checked once per statement, over all of its rows:
--   * an inserted entry or outbox row cannot name a donation that does not exist;
--   * an outbox row's donation cannot be changed to one that does not exist;
--   * a donation that an entry or an outbox row names cannot be deleted;
--   * a donation's id cannot change.
-- The checks take no row locks: every transaction that inserts entries or outbox rows or
-- deletes donations is the ledger writer's, which holds the fund row's lock, so none runs
-- concurrently with another. Violations raise SQLSTATE 23503 (foreign_key_violation), as the
-- foreign keys did.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_donation_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_donation_id_fkey;

CREATE FUNCTION donation_refs_exist() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n
               WHERE n.donation_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM donations d WHERE d.id = n.donation_id)) THEN
        RAISE EXCEPTION 'a row of "%" names a donation that does not exist', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_donation_exists AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION donation_refs_exist();
CREATE TRIGGER outbox_donation_exists AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION donation_refs_exist();
-- The mailer updates outbox rows often; only a changed donation_id is checked (WHEN), so
-- its updates capture no transition table.
CREATE FUNCTION outbox_donation_change_exists() RETURNS trigger AS $$
BEGIN
    IF NEW.donation_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM donations d WHERE d.id = NEW.donation_id) THEN
        RAISE EXCEPTION 'a row of "outbox" names a donation that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_donation_change AFTER UPDATE OF donation_id ON outbox
    FOR EACH ROW WHEN (OLD.donation_id IS DISTINCT FROM NEW.donation_id)
    EXECUTE FUNCTION outbox_donation_change_exists();

CREATE FUNCTION donations_unreferenced() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows o
               WHERE EXISTS (SELECT 1 FROM ledger_entries e WHERE e.donation_id = o.id)
                  OR EXISTS (SELECT 1 FROM outbox m WHERE m.donation_id = o.id)) THEN
        RAISE EXCEPTION 'a donation named by a ledger entry or an outbox row cannot be deleted'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER donations_delete_unreferenced AFTER DELETE ON donations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION donations_unreferenced();

CREATE FUNCTION donations_id_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'a donation''s id cannot change' USING ERRCODE = 'foreign_key_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER donations_id_unchanged BEFORE UPDATE OF id ON donations
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION donations_id_fixed();
