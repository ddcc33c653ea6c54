//! Stripe: the API client (async-stripe, read leniently), webhook signatures, event facts, and
//! the background work that follows a payment (fees, cancelling intents, reservations).

pub mod events;
pub mod owner;
pub mod payouts;
mod refunds;
pub mod signature;
pub mod worker;

use std::time::Duration;

use serde_json::Value;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::config::StripeConfig;
pub use crate::ledger::card::Settlement;
pub use refunds::RefundMade;

/// The Stripe API version every call is made with (`Stripe-Version`, sent by async-stripe on
/// each request) and the webhook endpoint must be created with: the shapes crowdledger reads
/// are this version's. A unit test fails when an upgrade of async-stripe changes it.
pub const STRIPE_API_VERSION: &str = "2026-09-30.endive";

/// Attempts for calls that carry an idempotency key (safe to repeat).
const ATTEMPTS: u32 = 3;

/// A failed Stripe call.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe answered with an error status (4xx or 5xx).
    #[error("Stripe answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stripe's message, if readable.
        message: String,
    },
    /// Stripe could not be reached or answered something unreadable.
    #[error("Stripe unreachable: {0}")]
    Transport(String),
}

/// A created PaymentIntent.
#[derive(Debug, Clone)]
pub struct Intent {
    /// `pi_...`.
    pub id: String,
    /// What Stripe.js needs to confirm it.
    pub client_secret: String,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// The objects.
    pub data: Vec<Value>,
    /// More after the last one.
    pub has_more: bool,
}

impl Page {
    /// Reads a Stripe list object (`data`, `has_more`).
    fn of(list: &Value) -> Page {
        Page {
            data: list
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            has_more: list
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// The id of the page's last object (`starting_after` of the next page), when there is one.
    pub fn next_after(&self) -> Option<String> {
        self.has_more
            .then(|| self.data.last()?.get("id")?.as_str().map(str::to_owned))
            .flatten()
    }
}

/// A balance transaction's `exchange_rate` as its JSON text (a rate, not money: kept as
/// written, never through a float here).
pub fn exchange_rate(bt: &Value) -> Option<String> {
    match bt.get("exchange_rate")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// The Stripe account crowdledger works with.
#[derive(Clone)]
pub struct Payments {
    client: Client,
    /// Given to the donation page.
    pub publishable_key: String,
    /// Webhook signing secrets (several during a rotation).
    pub webhook_secrets: Vec<String>,
    /// Where the page loads Stripe.js from.
    pub js_url: String,
    /// Whose events are ours (the key's mode, the configured account).
    pub owner: owner::Owner,
    /// The payment method types the donor page offers (`PAYMENT_METHODS`).
    pub methods: Vec<String>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("publishable_key", &self.publishable_key)
            .finish_non_exhaustive()
    }
}

impl Payments {
    /// A client for the configured account and endpoint.
    pub fn new(cfg: &StripeConfig) -> Result<Payments, anyhow::Error> {
        let mut builder =
            ClientBuilder::new(cfg.secret_key.clone()).timeout(Duration::from_secs(20));
        if let Some(base) = &cfg.api_base {
            let base = if base.ends_with('/') {
                base.clone()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        Ok(Payments {
            client: builder.build()?,
            publishable_key: cfg.publishable_key.clone(),
            webhook_secrets: cfg.webhook_secrets.clone(),
            js_url: cfg.js_url.clone(),
            owner: owner::Owner::new(&cfg.secret_key, cfg.account_id.as_deref()),
            methods: cfg.payment_methods.clone(),
        })
    }

    /// Sends one request and reads the answer as plain JSON (only the fields we use are read
    /// later, so API-version drift and older fakes do not break parsing).
    pub(crate) async fn call(
        &self,
        method: StripeMethod,
        path: &str,
        form: Option<&Value>,
        query: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeCallError> {
        let attempts = if idempotency_key.is_some() {
            ATTEMPTS
        } else {
            1
        };
        let mut last = StripeCallError::Transport("not sent".into());
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let mut req = RequestBuilder::new(method, path);
            if let Some(f) = form {
                req = req.form(f);
            }
            if let Some(q) = query {
                req = req.query(q);
            }
            let mut req = req.customize::<miniserde::json::Value>();
            if let Some(key) = idempotency_key {
                let key = IdempotencyKey::new(key)
                    .map_err(|e| StripeCallError::Transport(e.to_string()))?;
                req = req.request_strategy(RequestStrategy::Idempotent(key));
            }
            match req.send(&self.client).await {
                Ok(v) => {
                    return serde_json::from_str(&miniserde::json::to_string(&v))
                        .map_err(|e| StripeCallError::Transport(e.to_string()));
                }
                Err(stripe::StripeError::Stripe(err, status)) => {
                    last = StripeCallError::Api {
                        status,
                        message: err.message.clone().unwrap_or_default(),
                    };
                    if status < 500 && status != 429 {
                        break;
                    }
                }
                Err(stripe::StripeError::JSONDeserialize(msg)) => {
                    // An error body in an older shape: the call failed, with a status we
                    // cannot read; treat it as a refusal, not as an outage.
                    last = StripeCallError::Api {
                        status: 400,
                        message: msg,
                    };
                    break;
                }
                Err(other) => last = StripeCallError::Transport(other.to_string()),
            }
        }
        Err(last)
    }

    /// Creates the PaymentIntent of a donation. The idempotency key is derived from the
    /// donation, so a retry never creates a second intent.
    pub async fn create_intent(
        &self,
        key: &str,
        donation_id: i64,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Intent, StripeCallError> {
        // Exactly the enabled methods: `payment_method_types` ("The list of payment method
        // types that this PaymentIntent can use", Stripe's API description of
        // PaymentIntent create), not `automatic_payment_methods`, which offers whatever the
        // Dashboard's settings enable and cannot be narrowed to a list from here.
        let mut form = serde_json::json!({
            "amount": amount_minor,
            "currency": currency.to_lowercase(),
            "metadata": { "donation_id": donation_id.to_string() },
            "payment_method_types": crate::domain::payment_methods::intent_types(&self.methods),
        });
        if self.methods.iter().any(|m| m == "wechat_pay") {
            // A QR code shown in a desktop or mobile browser (the page confirms with it).
            form["payment_method_options"] =
                serde_json::json!({ "wechat_pay": { "client": "web" } });
        }
        let v = self
            .call(
                StripeMethod::Post,
                "/payment_intents",
                Some(&form),
                None,
                Some(key),
            )
            .await?;
        match (
            v.get("id").and_then(Value::as_str),
            v.get("client_secret").and_then(Value::as_str),
        ) {
            (Some(id), Some(secret)) => Ok(Intent {
                id: id.to_owned(),
                client_secret: secret.to_owned(),
            }),
            _ => Err(StripeCallError::Transport(
                "PaymentIntent without id or client_secret".into(),
            )),
        }
    }

    /// Fetches a PaymentIntent.
    pub async fn intent(&self, id: &str) -> Result<Value, StripeCallError> {
        self.call(
            StripeMethod::Get,
            &format!("/payment_intents/{id}"),
            None,
            None,
            None,
        )
        .await
    }

    /// Cancels a PaymentIntent; returns its status afterwards (`canceled`, or `succeeded` if
    /// it was too late).
    pub async fn cancel_intent(&self, id: &str) -> Result<String, StripeCallError> {
        match self
            .call(
                StripeMethod::Post,
                &format!("/payment_intents/{id}/cancel"),
                None,
                None,
                Some(&format!("cancel-{id}")),
            )
            .await
        {
            Ok(v) => Ok(v
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("canceled")
                .to_owned()),
            Err(StripeCallError::Api { .. }) => {
                // Not cancelable: say what it is now.
                let v = self.intent(id).await?;
                Ok(v.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// One page of PaymentIntents after `starting_after`.
    pub async fn list_intents(
        &self,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeCallError> {
        let mut q = serde_json::json!({ "limit": 100 });
        if let Some(after) = starting_after {
            q["starting_after"] = Value::String(after.to_owned());
        }
        let v = self
            .call(StripeMethod::Get, "/payment_intents", None, Some(&q), None)
            .await?;
        Ok(Page::of(&v))
    }

    /// One page of the events whose delivery to a webhook endpoint failed, created at or
    /// after `since` (Unix seconds; Stripe keeps events 30 days), after `starting_after`.
    pub async fn undelivered_events(
        &self,
        since: i64,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeCallError> {
        let mut q = serde_json::json!({
            "limit": 100, "delivery_success": "false", "created": { "gte": since },
        });
        if let Some(after) = starting_after {
            q["starting_after"] = Value::String(after.to_owned());
        }
        let v = self
            .call(StripeMethod::Get, "/events", None, Some(&q), None)
            .await?;
        Ok(Page::of(&v))
    }

    /// Fee and net of a payment, from its charge's balance transaction, in that
    /// transaction's currency. `Ok(None)` while Stripe has no balance transaction yet.
    pub async fn fees(
        &self,
        payment_intent: &str,
        charge: Option<&str>,
    ) -> Result<Option<Settlement>, StripeCallError> {
        let charge_id = match charge {
            Some(c) => c.to_owned(),
            None => {
                let pi = self.intent(payment_intent).await?;
                match pi
                    .get("latest_charge")
                    .and_then(events::id_of)
                    .or_else(|| pi.pointer("/charges/data/0").and_then(events::id_of))
                {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
        };
        let ch = self
            .call(
                StripeMethod::Get,
                &format!("/charges/{charge_id}"),
                None,
                None,
                None,
            )
            .await?;
        let Some(txn) = ch.get("balance_transaction").and_then(events::id_of) else {
            return Ok(None);
        };
        let bt = self
            .call(
                StripeMethod::Get,
                &format!("/balance_transactions/{txn}"),
                None,
                None,
                None,
            )
            .await?;
        match (
            bt.get("fee").and_then(events::int),
            bt.get("net").and_then(events::int),
            bt.get("amount").and_then(events::int),
            bt.get("currency").and_then(Value::as_str),
        ) {
            (Some(fee_minor), Some(net_minor), Some(amount_minor), Some(currency)) => {
                Ok(Some(Settlement {
                    fee_minor,
                    net_minor,
                    amount_minor,
                    currency: currency.to_uppercase(),
                    exchange_rate: exchange_rate(&bt),
                    charge: charge_id,
                    method_type: events::method_of_charge(&ch).map(str::to_owned),
                }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn the_pinned_api_version_is_the_one_async_stripe_sends() {
        assert_eq!(
            stripe_client_core::VERSION.as_str(),
            super::STRIPE_API_VERSION,
            "async-stripe now sends another Stripe-Version: read Stripe's changelog for the \
             shapes crowdledger reads, then change STRIPE_API_VERSION and the README"
        );
    }
}
