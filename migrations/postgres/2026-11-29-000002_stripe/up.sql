-- Card donations through Stripe: the charge, reservations (strict cap mode), disputes, and
-- every Stripe event seen (so each is applied once; events that arrive before their payment
-- is known are kept and applied later).
ALTER TABLE donations ADD COLUMN charge_id TEXT;
ALTER TABLE donations ADD COLUMN reserved_until TIMESTAMP;
ALTER TABLE donations ADD COLUMN dispute_status TEXT;
CREATE INDEX donations_charge ON donations (charge_id);
CREATE INDEX donations_pending_card ON donations (status, reserved_until) WHERE method = 'card';

CREATE TABLE stripe_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    payment_intent_id TEXT,
    charge_id TEXT,
    created BIGINT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    applied_at TIMESTAMP,
    fact TEXT NOT NULL
);
CREATE INDEX stripe_events_kept_pi ON stripe_events (payment_intent_id) WHERE applied_at IS NULL;
CREATE INDEX stripe_events_kept_charge ON stripe_events (charge_id) WHERE applied_at IS NULL;
