//! Email: the outbox (rows written by the ledger writer in the same transaction as the change
//! that causes them), the mailer that drains it over SMTP with retries, and the templates.

mod context;
pub mod outbox;
mod redact;
pub mod templates;

pub use context::{common_context, merge, no_goods_due, receipt_number};
pub use redact::without_addresses;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use tokio::sync::Notify;

use crate::config::MailConfig;
use crate::db::models::{DonationRow, OutboxRow};
use crate::db::schema::{donations, users};
use crate::db::{DbConn, Pool};
use crate::error::AppError;
use templates::{Rendered, Templates};

/// Rows one pass claims.
const CLAIM: i64 = 50;
/// How often the outbox is looked at when nothing wakes the mailer.
const POLL: Duration = Duration::from_secs(1);
/// Least time between two passes. Under a burst every ledger batch wakes the mailer (hundreds
/// a second in the webhook benchmark), and each pass reads the outbox; one pass per gap picks
/// up everything queued meanwhile (a wake during the gap is kept, not lost).
const WAKE_GAP: Duration = Duration::from_millis(50);

/// Drains the outbox.
pub struct Mailer {
    cfg: MailConfig,
    templates: Templates,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    pool: Pool,
    wake: Arc<Notify>,
    fund_name: Arc<dyn Fn() -> String + Send + Sync>,
    public_url: String,
    instance: String,
}

/// Why a message was not sent.
#[derive(Debug)]
struct Refusal {
    error: String,
    /// For good (a 5xx answer, a message that cannot be built); otherwise it may pass later.
    permanent: bool,
}

/// A message ready to go.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Recipients.
    pub to: Vec<String>,
    /// Rendered parts.
    pub rendered: Rendered,
}

impl Mailer {
    /// A mailer for `cfg`; without `SMTP_URL` it only logs what is queued.
    pub fn new(
        cfg: MailConfig,
        pool: Pool,
        wake: Arc<Notify>,
        fund_name: Arc<dyn Fn() -> String + Send + Sync>,
        public_url: String,
        instance: String,
    ) -> Result<Mailer, anyhow::Error> {
        let templates = Templates::load(cfg.templates_dir.as_deref())?;
        let transport = match &cfg.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => None,
        };
        Ok(Mailer {
            cfg,
            templates,
            transport,
            pool,
            wake,
            fund_name,
            public_url,
            instance,
        })
    }

    async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&mut *pool.get()?))
            .await
            .map_err(AppError::internal)?
    }

    /// Sends what is due whenever woken or once a second, until `stop` turns true: then it
    /// finishes the message it is sending (and records it), starts no other, and returns.
    /// Never cut a send short from outside: a message the server accepted but not recorded
    /// as sent would go again at the next start.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.transport.is_none() {
            tracing::warn!("SMTP_URL is not set: emails are logged and stay queued");
        }
        let mut logged_up_to = 0_i64;
        while !*stop.borrow() {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => break,
            }
            if self.transport.is_none() {
                logged_up_to = self.log_unsent(logged_up_to).await;
            } else {
                self.drain(&stop).await;
            }
            tokio::select! {
                () = tokio::time::sleep(WAKE_GAP) => {}
                _ = stop.changed() => break,
            }
        }
        tracing::info!("mailer stopped");
    }

    /// Passes until one comes back short (a full pass means more may be due), fails, or the
    /// mailer is asked to stop.
    async fn drain(&self, stop: &tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.pass_until(stop).await {
                Ok(n) if i64::try_from(n).is_ok_and(|n| n >= CLAIM) => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e.detail, "mail pass failed; retrying");
                    break;
                }
            }
        }
    }

    /// Without SMTP: logs each new queued email once (recipients only at debug level) and
    /// leaves it queued. Returns the last row id logged.
    async fn log_unsent(&self, after: i64) -> i64 {
        use crate::db::schema::outbox as ob;
        let rows = self
            .db(move |c| {
                // By id alone, a walk along the primary key: with `sent_at IS NULL` in the query
                // too, PostgreSQL (its statistics a burst behind) intersected both indexes and
                // read every unsent row, 29 ms a pass at 60,000 queued receipts.
                Ok(ob::table
                    .filter(ob::id.gt(after))
                    .order(ob::id.asc())
                    .limit(CLAIM)
                    .select(OutboxRow::as_select())
                    .load::<OutboxRow>(c)?)
            })
            .await
            .unwrap_or_default();
        let mut last = after;
        for row in rows {
            last = row.id;
            if row.sent_at.is_some() {
                continue;
            }
            tracing::info!(outbox = row.id, kind = %row.kind, donation = ?row.donation_id, "email queued, not sent: no SMTP_URL");
            // Rendering costs a read and three templates: only when someone is looking.
            if tracing::enabled!(tracing::Level::DEBUG) {
                let id = row.id;
                match self.compose(row).await {
                    Ok(out) => {
                        tracing::debug!(outbox = id, subject = %out.rendered.subject, to = ?out.to, "queued email")
                    }
                    Err(e) => {
                        tracing::warn!(outbox = id, error = %e.detail, "queued email cannot be composed")
                    }
                }
            }
        }
        last
    }

    /// Claims the due rows and sends each. Each row's lease is renewed just before its send:
    /// a row whose lease ran out while the rows before it went to a slow server may have been
    /// claimed by another instance, which then sends it; this one skips it.
    pub async fn pass(&self) -> Result<usize, AppError> {
        let (_keep, never) = tokio::sync::watch::channel(false);
        self.pass_until(&never).await
    }

    /// [`Mailer::pass`], stopping before the next row once `stop` is true; the rows of the
    /// claim not sent are given back.
    async fn pass_until(
        &self,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<usize, AppError> {
        let now = crate::db::now();
        let lease = chrono::Duration::from_std(self.cfg.lease).map_err(AppError::internal)?;
        let token = format!("{}-{:016x}", self.instance, rand::random::<u64>());
        let claim_token = token.clone();
        let rows = self
            .db(move |c| outbox::claim(c, now, CLAIM, lease, &claim_token))
            .await?;
        let n = rows.len();
        for row in rows {
            if *stop.borrow() {
                let t = token.clone();
                self.db(move |c| outbox::release(c, &t, crate::db::now()))
                    .await?;
                break;
            }
            let id = row.id;
            let attempts = row.attempts;
            let t = token.clone();
            let held = self
                .db(move |c| outbox::renew(c, id, &t, crate::db::now() + lease))
                .await?;
            if !held {
                tracing::debug!(outbox = id, "outbox row taken over by another sender");
                continue;
            }
            // Not cut short by a timeout of our own: a message cut off after its data went out
            // may have been accepted, and a server that is always that slow would get it again
            // at every retry. The lease only has to outlast one send (`MAIL_LEASE`).
            let result = self.compose_and_send(row).await;
            let now = crate::db::now();
            let t = token.clone();
            let held = match result {
                Ok(()) => self.db(move |c| outbox::mark_sent(c, id, &t, now)).await?,
                Err(Refusal { error, permanent }) => {
                    // Mail servers name the recipient in their refusals; the log must not.
                    let logged = without_addresses(&error);
                    let failure = outbox::Failure {
                        error,
                        permanent,
                        attempts,
                        retry_at: now
                            + outbox::backoff(self.cfg.retry_base, self.cfg.retry_max, attempts),
                    };
                    if failure.gives_up() {
                        tracing::warn!(outbox = id, error = %logged, "email refused for good; giving up (an admin may retry it)");
                    } else {
                        tracing::warn!(outbox = id, permanent, error = %logged, "email not sent; will retry");
                    }
                    self.db(move |c| outbox::mark_failed(c, id, &t, &failure, now))
                        .await?
                }
            };
            if !held {
                tracing::warn!(
                    outbox = id,
                    "outbox row was taken over while it was being sent: MAIL_LEASE is shorter than one send"
                );
            }
        }
        Ok(n)
    }

    async fn compose_and_send(&self, row: OutboxRow) -> Result<(), Refusal> {
        let id = row.id;
        match self.compose(row).await {
            Ok(out) => self.send(id, out).await,
            // A row that cannot be composed (no recipient, a broken template) will not compose
            // next time either; a database that is out of reach may come back.
            Err(e) => Err(Refusal {
                permanent: e.code != crate::error::ErrorCode::Unavailable,
                error: e.detail,
            }),
        }
    }

    async fn send(&self, id: i64, out: Outgoing) -> Result<(), Refusal> {
        let permanent = |error: String| Refusal {
            error,
            permanent: true,
        };
        let Some(transport) = &self.transport else {
            return Err(Refusal {
                error: "no SMTP server configured".into(),
                permanent: false,
            });
        };
        let from: Mailbox = self
            .cfg
            .from
            .parse()
            .map_err(|e| permanent(format!("MAIL_FROM: {e}")))?;
        let domain = from.email.domain().to_owned();
        for to in &out.to {
            let to: Mailbox = to
                .parse()
                .map_err(|e| permanent(format!("recipient: {e}")))?;
            // Stable per outbox row (and recipient), so a resend after a crash is recognisable.
            let message_id = format!(
                "<outbox-{id}-{}-{}@{domain}>",
                self.instance,
                hex::encode(to.email.to_string())
            );
            let msg = Message::builder()
                .from(from.clone())
                .to(to)
                .subject(out.rendered.subject.clone())
                .message_id(Some(message_id))
                .multipart(MultiPart::alternative_plain_html(
                    out.rendered.text.clone(),
                    out.rendered.html.clone(),
                ))
                .map_err(|e| permanent(e.to_string()))?;
            transport.send(msg).await.map_err(|e| Refusal {
                permanent: e.is_permanent(),
                error: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Builds the template context and the recipients of a row.
    pub async fn compose(&self, row: OutboxRow) -> Result<Outgoing, AppError> {
        let mut ctx: Value = serde_json::from_str(&row.payload).map_err(AppError::internal)?;
        merge(
            &mut ctx,
            &common_context(
                &self.cfg,
                &(self.fund_name)(),
                &self.public_url,
                &row.locale,
            ),
        );
        let due = serde_json::json!({ "no_goods_due": context::no_goods_due(&row.kind, &ctx) });
        merge(&mut ctx, &due);
        let addressed = ctx.get("to").and_then(Value::as_str).map(str::to_owned);
        let to = match (row.kind.as_str(), row.donation_id, addressed) {
            // Queued one row per recipient, each with its own retries and `sent_at`.
            (_, None, Some(to)) => vec![to],
            // A notice queued before rows were per recipient: every staff member.
            ("intake_closed", None, None) => {
                self.db(|c| {
                    Ok(users::table
                        .select(users::email)
                        .order(users::id)
                        .load::<String>(c)?)
                })
                .await?
            }
            (_, Some(donation_id), _) => {
                let d: DonationRow = self
                    .db(move |c| {
                        Ok(donations::table
                            .find(donation_id)
                            .select(DonationRow::as_select())
                            .first(c)?)
                    })
                    .await?;
                let date = d
                    .received_on
                    .or(d.succeeded_at.map(|t| t.date()))
                    .unwrap_or(d.created_at.date());
                let donor = serde_json::json!({
                    "donor_name": d.donor_name,
                    "anonymous": d.anonymous,
                    "receipt_number": receipt_number(d.id),
                    "date": if row.kind == "refund" { row.created_at.date() } else { date },
                    // How it was paid, as Stripe's charge named it; a Stripe payment whose
                    // charge has not said yet is an online payment.
                    "method": d.payment_method_type.as_deref().unwrap_or(
                        if d.payment_intent_id.is_some() { "online" } else { d.method.as_str() }
                    ),
                });
                merge(&mut ctx, &donor);
                d.email.into_iter().collect()
            }
            (_, None, None) => Vec::new(),
        };
        if to.is_empty() {
            return Err(AppError::internal(format!(
                "outbox row {} has no recipient",
                row.id
            )));
        }
        let rendered = self
            .templates
            .render(&row.kind, &row.locale, &ctx)
            .map_err(|e| AppError::internal(format!("template {}: {e}", row.kind)))?;
        Ok(Outgoing { to, rendered })
    }
}
