-- Dropping these columns would leave every version 2 entry unverifiable (its hash covers
-- them): refused while one exists.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger_entries WHERE hash_version <> 1) THEN
        RAISE EXCEPTION 'the ledger has hash version 2 entries: reverting would break its chain';
    END IF;
END
$$;
DROP TABLE disbursements;
ALTER TABLE ledger_entries DROP COLUMN public_memo;
ALTER TABLE ledger_entries DROP COLUMN disbursed_after_minor;
ALTER TABLE ledger_entries DROP COLUMN hash_version;
