-- Deleting a donation (a card donation abandoned before it was paid) checks that no outbox row
-- names it (SQLite's foreign key; PostgreSQL's trigger from migration `donation_refs`). Without
-- an index on outbox.donation_id that check read the whole outbox: 371 ms in the ledger
-- writer's batch with 1,000,000 receipts, every donor waiting behind it.
CREATE INDEX outbox_donation ON outbox (donation_id);
