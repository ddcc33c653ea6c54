-- A claim names its holder (issue 18, item 5): the mailer renews a row's lease just before
-- sending it, and marks it sent or failed, only while the row is still under its own claim,
-- so a row whose lease ran out behind a slow mail server is sent by whoever took it, once.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
-- A row gives up (`failed`) only when the mail server refused it permanently (5xx) on its
-- twelfth attempt or later; an outage never parks it. Rows the old attempt count parked are
-- retried (their failed_at is NULL) and give up again only if a server refuses them.
ALTER TABLE outbox ADD COLUMN failed_at TIMESTAMP;
-- Login attempts counted in the database, so that the instances sharing a PostgreSQL
-- database share one budget per address and per account (issue 18, item 9). One row per
-- key (`account:EMAIL`, `address:IP`): the GCRA "theoretical arrival time", in microseconds
-- since the Unix epoch of the database's clock. A row whose time is past is as good as none
-- and is deleted by a sweep. (Created on SQLite too, for one schema; used on PostgreSQL.)
CREATE TABLE login_limits (
    key TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
