-- One-time codes a donor asks for to see their own gifts (GET /receipts): the 6-digit code and
-- the emailed link are stored as SHA-256 hashes only; a code dies after 10 minutes, 5 wrong
-- tries, or its first use.
CREATE TABLE lookup_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    link_hash TEXT NOT NULL UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    spent_at TIMESTAMP
);
CREATE INDEX lookup_codes_email ON lookup_codes (email, id);
