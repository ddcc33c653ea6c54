-- A period ends on or after the day it starts (issue 22): the API refuses such a period with
-- 422, and the allocation and reports rely on it, so the database refuses one too, whoever
-- writes it. Added NOT VALID (a brief lock, no scan), then validated in its own transaction,
-- which scans the table without blocking writes; so this runs outside a transaction
-- (metadata.toml, db::online). Dropped first so a retried migration is safe.
ALTER TABLE periods DROP CONSTRAINT IF EXISTS periods_dates_ordered;
ALTER TABLE periods ADD CONSTRAINT periods_dates_ordered CHECK (ends_on >= starts_on) NOT VALID;
ALTER TABLE periods VALIDATE CONSTRAINT periods_dates_ordered;
