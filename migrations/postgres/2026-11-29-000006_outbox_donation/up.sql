-- Deleting a donation (a card donation abandoned before it was paid) checks that no outbox row
-- names it (SQLite's foreign key; PostgreSQL's trigger from migration `donation_refs`). Without
-- an index on outbox.donation_id that check read the whole outbox: 371 ms in the ledger
-- writer's batch with 1,000,000 receipts, every donor waiting behind it.
-- Applied outside a transaction, one statement at a time (metadata.toml, db::online), so the
-- index builds do not block writes to a table the fund is using (issue 22). Only databases that
-- have not applied this migration yet run this version; one that applied the earlier,
-- transactional text keeps its result, which is the same schema.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_donation ON outbox (donation_id);
