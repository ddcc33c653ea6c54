DROP INDEX outbox_donation;
