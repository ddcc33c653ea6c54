//! Payout reconciliation: the balance transactions Stripe paid out, matched to the ledger's
//! donations to the cent. Reports what matched, what Stripe has that the ledger lacks, what
//! the ledger has that Stripe has not paid out, and where both have it with other figures.

use diesel::prelude::*;
use serde_json::{Value, json};

use super::events::{Fact, id_of, int};
use super::{Payments, StripeCallError};
use crate::db::models::DonationRow;
use crate::db::schema::donations;
use crate::db::{DbConn, Pool};
use crate::error::AppError;
use crate::ledger::payouts::SavePayoutReport;
use stripe_client_core::StripeMethod;

impl Payments {
    /// A payout.
    pub async fn payout(&self, id: &str) -> Result<Value, StripeCallError> {
        self.call(
            StripeMethod::Get,
            &format!("/payouts/{id}"),
            None,
            None,
            None,
        )
        .await
    }

    /// Recent payouts, newest first as Stripe lists them.
    pub async fn payouts(&self) -> Result<Vec<Value>, StripeCallError> {
        let v = self
            .call(
                StripeMethod::Get,
                "/payouts",
                None,
                Some(&json!({ "limit": 100 })),
                None,
            )
            .await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    async fn list_all(&self, query: &Value) -> Result<Vec<Value>, StripeCallError> {
        let mut all = Vec::new();
        let mut q = query.clone();
        loop {
            let v = self
                .call(
                    StripeMethod::Get,
                    "/balance_transactions",
                    None,
                    Some(&q),
                    None,
                )
                .await?;
            let data = v
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let last = data
                .last()
                .and_then(|t| t.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            all.extend(data);
            match (v.get("has_more").and_then(Value::as_bool), last) {
                (Some(true), Some(l)) => q["starting_after"] = Value::String(l),
                _ => return Ok(all),
            }
        }
    }

    /// The balance transactions a payout paid out. Stripe filters by `payout`; an endpoint
    /// that refuses the filter (localstripe) gets the transactions that were available when the
    /// payout was created, which is what an automatic payout sweeps.
    pub async fn payout_transactions(
        &self,
        payout: &Value,
    ) -> Result<(Vec<Value>, bool), StripeCallError> {
        let id = payout.get("id").and_then(Value::as_str).unwrap_or_default();
        match self.list_all(&json!({ "payout": id, "limit": 100 })).await {
            Ok(txns) => Ok((txns, true)),
            Err(StripeCallError::Api { status: 400, .. }) => {
                let created = payout.get("created").and_then(int).unwrap_or(i64::MAX);
                let txns = self
                    .list_all(&json!({ "limit": 100 }))
                    .await?
                    .into_iter()
                    .filter(|t| t.get("created").and_then(int).is_some_and(|c| c <= created))
                    .filter(|t| t.get("type").and_then(Value::as_str) != Some("payout"))
                    .collect();
                Ok((txns, false))
            }
            Err(e) => Err(e),
        }
    }

    async fn refund_charge(&self, refund: &str) -> Result<Option<String>, StripeCallError> {
        let v = self
            .call(
                StripeMethod::Get,
                &format!("/refunds/{refund}"),
                None,
                None,
                None,
            )
            .await?;
        Ok(v.get("charge").and_then(id_of))
    }
}

fn payout_fact(v: &Value) -> Fact {
    Fact::Payout {
        payout: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        amount: v.get("amount").and_then(int).unwrap_or(0),
        currency: v
            .get("currency")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase(),
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        arrival_date: v.get("arrival_date").and_then(int),
        created: v.get("created").and_then(int).unwrap_or(0),
    }
}

/// A settled amount (minor units of `from`) converted back into `to`, the charge's currency,
/// with the transaction's `exchange_rate` (charge amount × rate = settled amount), rounded
/// to the nearest minor unit of `to`.
fn converted_back(settled: i64, txn: &Value, from: &str, to: &str) -> Option<i64> {
    use rust_decimal::Decimal;
    let text = super::exchange_rate(txn)?;
    let rate = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()?;
    if rate <= Decimal::ZERO {
        return None;
    }
    let major = Decimal::new(settled, crate::money::minor_digits(from)).checked_div(rate)?;
    let minor = major.checked_mul(Decimal::from(10_i64.pow(crate::money::minor_digits(to))))?;
    i64::try_from(minor.round()).ok()
}

async fn db<T, F>(pool: &Pool, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || f(&mut *pool.get()?))
        .await
        .map_err(AppError::internal)?
}

/// Reconciles one payout and returns what to save.
pub async fn reconcile_payout(
    payments: &Payments,
    pool: &Pool,
    payout_id: &str,
) -> Result<SavePayoutReport, AppError> {
    let payout = payments
        .payout(payout_id)
        .await
        .map_err(AppError::unavailable)?;
    let (txns, exact) = payments
        .payout_transactions(&payout)
        .await
        .map_err(AppError::unavailable)?;
    let owner = payout_id.to_owned();
    let (mut matched, mut missing_in_ledger, mut differences, mut other) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut matched_donations = Vec::new();
    // Every donation whose charge this payout contains, agreeing or not.
    let mut contained = Vec::new();
    let mut cutoff = 0_i64;
    for t in &txns {
        let kind = t
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let source = t.get("source").and_then(id_of).unwrap_or_default();
        let (amount, fee, net) = (
            t.get("amount").and_then(int).unwrap_or(0),
            t.get("fee").and_then(int).unwrap_or(0),
            t.get("net").and_then(int).unwrap_or(0),
        );
        cutoff = cutoff.max(t.get("created").and_then(int).unwrap_or(0));
        let charge = match kind.as_str() {
            "charge" | "payment" => Some(source.clone()),
            "refund" | "payment_refund" => payments
                .refund_charge(&source)
                .await
                .map_err(AppError::unavailable)?,
            _ => None,
        };
        // The transaction's figures are in its currency, the account's settlement currency.
        let currency = t
            .get("currency")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        let line = json!({ "type": kind, "transaction": t.get("id"), "source": source, "amount": amount, "fee": fee, "net": net, "currency": currency, "exchange_rate": super::exchange_rate(t) });
        let Some(charge) = charge else {
            other.push(line);
            continue;
        };
        let ch = charge.clone();
        let d: Option<DonationRow> = db(pool, move |c| {
            Ok(donations::table
                .filter(donations::charge_id.eq(&ch))
                .select(DonationRow::as_select())
                .first(c)
                .optional()?)
        })
        .await?;
        let Some(d) = d else {
            missing_in_ledger.push(line);
            continue;
        };
        // An earlier payout already took this donation (only possible without the exact filter).
        if !exact && d.payout_id.as_deref().is_some_and(|p| p != owner) && kind == "charge" {
            continue;
        }
        let mut line = line;
        line["donation_id"] = json!(d.id);
        if kind == "charge" || kind == "payment" {
            contained.push(d.id);
        }
        let converted = !currency.eq_ignore_ascii_case(&d.currency);
        let agrees = if kind == "charge" || kind == "payment" {
            line["ledger_fee"] = json!(d.fee_minor);
            line["ledger_net"] = json!(d.net_minor);
            let figures_agree =
                d.fee_minor.is_none_or(|f| f == fee) && d.net_minor.is_none_or(|n| n == net);
            if converted {
                // Settled in another currency: compare with what the ledger recorded of this
                // very transaction (its currency and amount), not with the gift's amount.
                line["ledger_currency"] = json!(d.fee_currency.as_deref().map(str::to_lowercase));
                line["ledger_amount"] = json!(d.settled_minor);
                line["ledger_gift"] = json!(d.amount_minor);
                d.status == "succeeded"
                    && d.fee_currency
                        .as_deref()
                        .is_some_and(|c| c.eq_ignore_ascii_case(&currency))
                    && d.settled_minor == Some(amount)
                    && figures_agree
            } else {
                line["ledger_currency"] = json!(d.currency.to_lowercase());
                line["ledger_amount"] = json!(d.amount_minor);
                d.status == "succeeded" && d.amount_minor == amount && figures_agree
            }
        } else {
            line["ledger_refunded"] = json!(d.refunded_minor);
            // A refund settled in another currency is converted back with its own rate
            // (to the nearest minor unit: Stripe rounds each conversion).
            let refunded = if converted {
                converted_back(-amount, t, &currency, &d.currency)
            } else {
                Some(-amount)
            };
            line["refunded_in_gift_currency"] = json!(refunded);
            refunded.is_some_and(|r| d.refunded_minor >= r)
        };
        if agrees {
            if kind == "charge" || kind == "payment" {
                matched_donations.push(d.id);
            }
            matched.push(line);
        } else {
            differences.push(line);
        }
    }
    // Card donations the ledger says succeeded before the last transaction of this payout,
    // that no payout has taken and this one does not contain.
    let cutoff_time = chrono::DateTime::from_timestamp(cutoff, 0).map(|t| t.naive_utc());
    let taken = contained;
    let pending: Vec<(i64, Option<String>, i64)> = match cutoff_time {
        Some(t) if cutoff > 0 => {
            db(pool, move |c| {
                Ok(donations::table
                    .filter(donations::method.eq("card"))
                    .filter(donations::status.eq("succeeded"))
                    .filter(donations::payout_id.is_null())
                    .filter(donations::succeeded_at.le(t))
                    .filter(donations::id.ne_all(&taken))
                    .select((donations::id, donations::charge_id, donations::amount_minor))
                    .load(c)?)
            })
            .await?
        }
        _ => Vec::new(),
    };
    let missing_in_stripe: Vec<Value> = pending
        .into_iter()
        .map(|(id, charge, amount)| json!({ "donation_id": id, "charge": charge, "ledger_amount": amount }))
        .collect();
    let count = |v: &Vec<Value>| i32::try_from(v.len()).unwrap_or(i32::MAX);
    Ok(SavePayoutReport {
        payout: payout_fact(&payout),
        matched_donations,
        matched: count(&matched),
        missing_in_ledger: count(&missing_in_ledger),
        missing_in_stripe: count(&missing_in_stripe),
        differences: count(&differences),
        report: json!({
            "exact_payout_filter": exact,
            "matched": matched,
            "missing_in_ledger": missing_in_ledger,
            "missing_in_stripe": missing_in_stripe,
            "differences": differences,
            "other": other,
        }),
    })
}
