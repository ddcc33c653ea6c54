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
        match conn {
            // One statement per list: one round trip for the whole batch.
            DbConn::Pg(c) => {
                for chunk in keys.event_ids.chunks(CHUNK) {
                    let found: Vec<String> = stripe_events::table
                        .filter(stripe_events::event_id.eq_any(chunk))
                        .select(stripe_events::event_id)
                        .load(c)?;
                    p.seen.extend(found);
                }
                for chunk in keys.payment_intents.chunks(CHUNK) {
                    let found: Vec<DonationRow> = donations::table
                        .filter(donations::payment_intent_id.eq_any(chunk))
                        .select(DonationRow::as_select())
                        .load(c)?;
                    p.by_intent.extend(
                        found
                            .into_iter()
                            .filter_map(|d| Some((d.payment_intent_id.clone()?, d))),
                    );
                }
            }
            // No round trips to save: one look-up per key, a statement of fixed text that
            // diesel prepares once (an `IN` list is prepared anew each time; see `cached`).
            // By unique keys, so without `first`'s bound LIMIT, which SQLite prepares again
            // at every run.
            DbConn::Sqlite(c) => {
                for id in &keys.event_ids {
                    let found = stripe_events::table
                        .find(id)
                        .select(stripe_events::event_id)
                        .get_result::<String>(c)
                        .optional()?;
                    p.seen.extend(found);
                }
                for pi in &keys.payment_intents {
                    let found = donations::table
                        .filter(donations::payment_intent_id.eq(pi))
                        .select(DonationRow::as_select())
                        .get_result(c)
                        .optional()?;
                    if let Some(d) = found {
                        p.by_intent.insert(pi.clone(), d);
                    }
                }
            }
        }
        if !none_kept && !keys.event_ids.is_empty() {
            p.kept_exist = diesel::select(diesel::dsl::exists(
                stripe_events::table.filter(stripe_events::applied_at.is_null()),
            ))
            .get_result::<bool>(conn)?;
        }
        Ok(p)
    }
}
