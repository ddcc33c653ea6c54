//! The work that follows the ledger's commits and talks to Stripe: cancelling intents when
//! intake closes or a reservation expires, fetching fees, and a periodic sweep that redoes
//! whatever an outage or a crash left undone.

use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::mpsc::Receiver;

use super::events::{Fact, succeeded_fact};
use super::{Payments, StripeCallError};
use crate::db::Pool;
use crate::db::schema::donations;
use crate::error::AppError;
use crate::ledger::card::{AbandonDonation, ApplyStripeEvent, SetFees};
use crate::ledger::{Effect, LedgerWriter};

/// Why a follow-up did not complete.
enum Failed {
    /// A fee look-up could not reach Stripe, or Stripe answered nothing readable.
    Unreachable(AppError),
    /// Anything else: Stripe refused, or the ledger did.
    Other(AppError),
}

impl From<Failed> for AppError {
    fn from(f: Failed) -> AppError {
        match f {
            Failed::Unreachable(e) | Failed::Other(e) => e,
        }
    }
}

/// Most rows one sweep handles of each kind.
const SWEEP_LIMIT: i64 = 100;

/// Card donations still open (pending or failed): the predicate of the partial index
/// `donations_pending_card`, word for word. SQLite uses a partial index only when the query
/// carries its WHERE terms as written (bound parameters do not match), so this is SQL text.
pub const OPEN_CARD: &str = "method = 'card' AND status IN ('pending', 'failed')";

/// [`OPEN_CARD`] as a filter.
fn open_card() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql(OPEN_CARD)
}

/// The worker's handles.
pub struct Worker {
    /// Stripe.
    pub payments: Payments,
    /// Where results are recorded.
    pub writer: LedgerWriter,
    /// Reads.
    pub pool: Pool,
    /// Strict-mode reservation lifetime.
    pub reservation_ttl: Duration,
    /// How long a new donation may wait for its intent (`Config::intent_budget`): the task
    /// creating it gives up then; past it and [`ORPHAN_GRACE`], a donation still without one
    /// lost that task (a crash) and is abandoned.
    pub intent_budget: Duration,
}

/// Time after the intent budget before the sweep takes a donation without an intent for
/// orphaned: its creating task abandons it by itself at the budget, give or take a batch.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(5);

/// Sweep interval for a reservation lifetime (or intent budget, if shorter): a quarter of it,
/// between 1 and 30 seconds.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

impl Worker {
    /// Runs until the writer's effect channel closes or `stop` turns true (a graceful stop:
    /// the follow-up under way finishes, no other starts; what is left is the sweep's after
    /// the next start).
    ///
    /// While Stripe cannot be reached, the fee look-ups of new successes are left to the sweep
    /// (which fetches every missing fee) rather than each costing a failed connection: after
    /// a look-up fails to reach Stripe, none is tried for one sweep interval. In a burst during
    /// an outage those attempts took a tenth of the server's CPU (BENCHMARKS.md).
    pub async fn run(
        self,
        mut effects: Receiver<Effect>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let interval = sweep_interval(self.reservation_ttl.min(self.intent_budget));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fees_paused_until: Option<tokio::time::Instant> = None;
        while !*stop.borrow() {
            tokio::select! {
                _ = stop.changed() => break,
                effect = effects.recv() => match effect {
                    Some(Effect::FetchFees { .. })
                        if fees_paused_until.is_some_and(|t| tokio::time::Instant::now() < t) =>
                    {
                        tracing::debug!("fee look-up left to the sweep: Stripe unreachable");
                    }
                    Some(e) => {
                        if let Err(failed) = self.handle(e).await {
                            if matches!(failed, Failed::Unreachable(_)) {
                                fees_paused_until = Some(tokio::time::Instant::now() + interval);
                            }
                            let e = AppError::from(failed);
                            tracing::warn!(
                                error = %e.detail,
                                "payment follow-up failed; the sweep will retry"
                            );
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.sweep().await,
            }
        }
    }

    /// Does one follow-up.
    async fn handle(&self, effect: Effect) -> Result<(), Failed> {
        match effect {
            Effect::CancelOutstanding => self.cancel_outstanding().await.map_err(Failed::Other),
            Effect::FetchFees {
                donation_id,
                payment_intent,
                charge,
            } => {
                self.fetch_fees(donation_id, &payment_intent, charge.as_deref())
                    .await
            }
            Effect::ReconcilePayout(id) => self.reconcile_payout(&id).await.map_err(Failed::Other),
            Effect::MailQueued => Ok(()),
        }
    }

    async fn rows<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConn) -> Result<T, AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&mut *pool.get()?))
            .await
            .map_err(AppError::internal)?
    }

    /// Cancels every intent of a donation still pending; one that succeeded meanwhile is
    /// recorded (flagged after_close) instead.
    async fn cancel_outstanding(&self) -> Result<(), AppError> {
        let open: Vec<(i64, String)> = self
            .rows(|c| {
                Ok(donations::table
                    .filter(open_card())
                    .filter(donations::payment_intent_id.is_not_null())
                    // Money on its way is never canceled: it is recorded when it arrives.
                    .filter(donations::processing_since.is_null())
                    .select((
                        donations::id,
                        donations::payment_intent_id.assume_not_null(),
                    ))
                    .limit(SWEEP_LIMIT * 10)
                    .load(c)?)
            })
            .await?;
        for (id, pi) in open {
            self.cancel(id, &pi).await?;
        }
        Ok(())
    }

    async fn cancel(&self, donation_id: i64, pi: &str) -> Result<(), AppError> {
        let status = self
            .payments
            .cancel_intent(pi)
            .await
            .map_err(AppError::unavailable)?;
        let fact = match status.as_str() {
            "canceled" => Fact::PaymentCanceled {
                payment_intent: pi.to_owned(),
                donation_id: Some(donation_id),
            },
            "succeeded" => {
                let v = self
                    .payments
                    .intent(pi)
                    .await
                    .map_err(AppError::unavailable)?;
                match succeeded_fact(&v) {
                    Some(f) => f,
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        self.writer
            .submit(ApplyStripeEvent {
                event_id: format!("local:{status}:{pi}"),
                event_type: format!("local.{status}"),
                created: chrono::Utc::now().timestamp(),
                fact,
                keep_unknown: false,
            })
            .await
            .map(|_| ())
    }

    async fn reconcile_payout(&self, id: &str) -> Result<(), AppError> {
        let report = super::payouts::reconcile_payout(&self.payments, &self.pool, id).await?;
        self.writer.submit(report).await
    }

    async fn fetch_fees(
        &self,
        donation_id: i64,
        pi: &str,
        charge: Option<&str>,
    ) -> Result<(), Failed> {
        let fees = self.payments.fees(pi, charge).await.map_err(|e| match e {
            StripeCallError::Transport(_) => Failed::Unreachable(AppError::unavailable(e)),
            StripeCallError::Api { .. } => Failed::Other(AppError::unavailable(e)),
        })?;
        if let Some(settlement) = fees {
            self.writer
                .submit(SetFees {
                    donation_id,
                    settlement,
                })
                .await
                .map_err(Failed::Other)?;
        }
        Ok(())
    }

    /// Redoes what may have been missed: fees not yet fetched, reservations past their time,
    /// donations whose intent was never created, and intents left open after intake closed.
    async fn sweep(&self) {
        if let Err(e) = self.sweep_once().await {
            tracing::warn!(error = %e.detail, "payment sweep failed; retrying later");
        }
    }

    async fn sweep_once(&self) -> Result<(), AppError> {
        let now = crate::db::now();
        let orphaned_before = now
            - chrono::Duration::from_std(self.intent_budget + ORPHAN_GRACE)
                .unwrap_or(chrono::Duration::minutes(2));
        let settled_before = now - chrono::Duration::seconds(5);
        let (no_fees, expired, orphans) = self
            .rows(move |c| {
                let no_fees: Vec<(i64, String, Option<String>)> = donations::table
                    .filter(donations::method.eq("card"))
                    .filter(donations::status.eq("succeeded"))
                    .filter(donations::fee_minor.is_null())
                    .filter(donations::succeeded_at.lt(settled_before))
                    .select((
                        donations::id,
                        donations::payment_intent_id.assume_not_null(),
                        donations::charge_id,
                    ))
                    .limit(SWEEP_LIMIT)
                    .load(c)?;
                let expired: Vec<(i64, Option<String>)> = donations::table
                    .filter(open_card())
                    .filter(donations::reserved_until.lt(now))
                    // A reservation holds through processing.
                    .filter(donations::processing_since.is_null())
                    .select((donations::id, donations::payment_intent_id))
                    .limit(SWEEP_LIMIT)
                    .load(c)?;
                let orphans: Vec<i64> = donations::table
                    .filter(open_card())
                    .filter(donations::status.eq("pending"))
                    .filter(donations::payment_intent_id.is_null())
                    .filter(donations::created_at.lt(orphaned_before))
                    .select(donations::id)
                    .limit(SWEEP_LIMIT)
                    .load(c)?;
                Ok((no_fees, expired, orphans))
            })
            .await?;
        for (id, pi, charge) in no_fees {
            self.fetch_fees(id, &pi, charge.as_deref()).await?;
        }
        for (id, pi) in expired {
            match pi {
                Some(pi) => self.cancel(id, &pi).await?,
                None => {
                    self.writer
                        .submit(AbandonDonation {
                            donation_id: id,
                            idempotency_key: None,
                        })
                        .await?;
                }
            }
        }
        for id in orphans {
            self.writer
                .submit(AbandonDonation {
                    donation_id: id,
                    idempotency_key: None,
                })
                .await?;
        }
        let closed = self
            .writer
            .snapshot()
            .get()
            .is_some_and(|s| s.view.intake.state == crate::domain::IntakeState::Closed);
        if closed {
            self.cancel_outstanding().await?;
        }
        Ok(())
    }
}
