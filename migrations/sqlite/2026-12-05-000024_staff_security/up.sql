-- Staff accounts safe enough for a donor list: a second factor (TOTP, RFC 6238) with one-time
-- recovery codes, accounts that can be disabled, and sessions stored server-side so a token
-- can be ended before its hour is up. Constant defaults: no existing row is rewritten.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT 0;
-- The TOTP secret (base32); in effect once `totp_enabled_at` is set (enrolment confirmed).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMP;
-- The last 30-second step whose code was accepted: a code is never accepted twice.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

CREATE TABLE staff_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    ended_by TEXT,
    client TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id, expires_at);
CREATE INDEX staff_sessions_ended ON staff_sessions (expires_at) WHERE ended_at IS NOT NULL;
