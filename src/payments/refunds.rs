//! Stripe's side of a refund: asking for one under the refund request's key, listing a
//! payment's refunds (to settle requests whose attempt died), a charge's refunded total.

use serde_json::Value;
use stripe_client_core::StripeMethod;

use super::{Payments, StripeCallError, events};

/// A refund Stripe made.
#[derive(Debug, Clone)]
pub struct RefundMade {
    /// `re_...`.
    pub id: String,
    /// The charge refunded, if the answer names it.
    pub charge: Option<String>,
    /// Stripe's status: `succeeded`, or `pending` while a method that refunds later works.
    pub status: String,
}

impl RefundMade {
    fn of(r: &Value) -> RefundMade {
        RefundMade {
            id: r.get("id").and_then(events::id_of).unwrap_or_default(),
            charge: r.get("charge").and_then(events::id_of),
            // An answer without a status is from before refunds had one: made.
            status: r
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("succeeded")
                .to_owned(),
        }
    }
}

impl Payments {
    /// Refunds part of a payment. `key` names the refund request, so a retry (by this or
    /// another instance) gets the refund Stripe already made instead of a second one.
    pub async fn refund(
        &self,
        key: &str,
        payment_intent: &str,
        amount_minor: i64,
        request_id: i64,
    ) -> Result<RefundMade, StripeCallError> {
        let form = serde_json::json!({
            "payment_intent": payment_intent,
            "amount": amount_minor,
            "metadata": { "refund_request": request_id.to_string() },
        });
        let v = self
            .call(StripeMethod::Post, "/refunds", Some(&form), None, Some(key))
            .await?;
        Ok(RefundMade::of(&v))
    }

    /// The refunds of a payment (newest first, up to 100), each with the refund request
    /// named in its metadata, to learn what became of requests whose attempt died.
    pub async fn refunds_of(
        &self,
        payment_intent: &str,
    ) -> Result<Vec<(RefundMade, Option<i64>)>, StripeCallError> {
        let q = serde_json::json!({ "payment_intent": payment_intent, "limit": 100 });
        let v = self
            .call(StripeMethod::Get, "/refunds", None, Some(&q), None)
            .await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .map(|data| {
                data.iter()
                    .map(|r| {
                        let made = RefundMade::of(r);
                        let request = r.pointer("/metadata/refund_request").and_then(events::int);
                        (made, request)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// What a charge has refunded in all (cumulative, as `charge.refunded` reports it), and
    /// the payment method type it names.
    pub async fn amount_refunded(
        &self,
        charge: &str,
    ) -> Result<(i64, Option<&'static str>), StripeCallError> {
        let ch = self
            .call(
                StripeMethod::Get,
                &format!("/charges/{charge}"),
                None,
                None,
                None,
            )
            .await?;
        let total = ch
            .get("amount_refunded")
            .and_then(events::int)
            .ok_or_else(|| StripeCallError::Transport("charge without amount_refunded".into()))?;
        Ok((total, events::method_of_charge(&ch)))
    }
}
