DROP TRIGGER donations_id_unchanged ON donations;
DROP FUNCTION donations_id_fixed();
DROP TRIGGER donations_delete_unreferenced ON donations;
DROP FUNCTION donations_unreferenced();
DROP TRIGGER outbox_donation_change ON outbox;
DROP FUNCTION outbox_donation_change_exists();
DROP TRIGGER outbox_donation_exists ON outbox;
DROP TRIGGER ledger_entries_donation_exists ON ledger_entries;
DROP FUNCTION donation_refs_exist();
ALTER TABLE outbox ADD CONSTRAINT outbox_donation_id_fkey
    FOREIGN KEY (donation_id) REFERENCES donations (id);
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_donation_id_fkey
    FOREIGN KEY (donation_id) REFERENCES donations (id);
