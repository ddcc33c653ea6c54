//! Reads a batch needs, done once for the whole batch: which Stripe events were seen, and the
//! donations the batch's facts name. In the writer's fast pass only (no savepoints), so what
//! a command changes is reflected here for the commands after it.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::models::DonationRow;
use crate::db::schema::{donations, stripe_events};
use crate::error::AppError;

/// Largest `IN (...)` list per query.
const CHUNK: usize = 1_000;

/// What commands will look up.
#[derive(Debug, Default)]
pub struct BatchKeys {
    /// Stripe event ids.
    pub event_ids: Vec<String>,
    /// PaymentIntent ids.
    pub payment_intents: Vec<String>,
}

impl BatchKeys {
    /// True when no command asked for anything.
    pub fn is_empty(&self) -> bool {
        self.event_ids.is_empty() && self.payment_intents.is_empty()
    }
}

/// The batch's reads.
#[derive(Debug, Default)]
pub struct Prefetched {
    /// Event ids already recorded (in the database or earlier in this batch).
    pub seen: HashSet<String>,
    /// Donations by PaymentIntent, as of the batch start (entries are dropped once a command
    /// changes the donation, so a later lookup reads it again).
    pub by_intent: HashMap<String, DonationRow>,
    /// PaymentIntents looked up and not found.
    pub unknown_intents: HashSet<String>,
    /// Whether any event is kept (waiting for its payment): in the database at the batch's
    /// start, or recorded as kept by a command of this batch.
    pub kept_exist: bool,
}

impl Prefetched {
    /// Reads everything `keys` names with a few queries. `none_kept`: the writer already knows
    /// no event is kept, so that is not asked (see `Writer::none_kept_at`).
    pub fn load(
        conn: &mut DbConn,
        keys: &BatchKeys,
        none_kept: bool,
    ) -> Result<Prefetched, AppError> {
        let mut p = Prefetched::default();
        for chunk in keys.event_ids.chunks(CHUNK) {
            let found: Vec<String> = stripe_events::table
                .filter(stripe_events::event_id.eq_any(chunk))
                .select(stripe_events::event_id)
                .load(conn)?;
            p.seen.extend(found);
        }
        for chunk in keys.payment_intents.chunks(CHUNK) {
            let found: Vec<DonationRow> = donations::table
                .filter(donations::payment_intent_id.eq_any(chunk))
                .select(DonationRow::as_select())
                .load(conn)?;
            for d in found {
                if let Some(pi) = d.payment_intent_id.clone() {
                    p.by_intent.insert(pi, d);
                }
            }
            for pi in chunk {
                if !p.by_intent.contains_key(pi) {
                    p.unknown_intents.insert(pi.clone());
                }
            }
        }
        if !none_kept && !keys.event_ids.is_empty() {
            p.kept_exist = stripe_events::table
                .filter(stripe_events::applied_at.is_null())
                .select(stripe_events::event_id)
                .first::<String>(conn)
                .optional()?
                .is_some();
        }
        Ok(p)
    }
}
