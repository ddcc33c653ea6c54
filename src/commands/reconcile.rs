//! `reconcile` and `reconcile payouts`: what Stripe knows and the webhooks did not tell.

use anyhow::Context;

use super::{connect, writer};
use crate::config::Config;
use crate::db;

/// `reconcile`: lists PaymentIntents at Stripe and records every success (and cancellation)
/// of ours that the webhooks missed. Returns how many donations it recorded.
pub fn reconcile(config: &mut Config, since: Option<chrono::NaiveDate>) -> anyhow::Result<u64> {
    use crate::ledger::card::{ApplyStripeEvent, EventOutcome};
    use crate::payments::events::{Fact, int, succeeded_fact};

    let stripe_config = config
        .stripe
        .as_ref()
        .context("reconcile needs STRIPE_SECRET_KEY (and the other STRIPE_* settings)")?;
    let payments = crate::payments::Payments::new(stripe_config)?;
    drop(connect(config)?);
    let writer = writer(config)?;
    let since_ts = since
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp());
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut checked, mut recorded, mut known, mut foreign, mut mismatched) =
        (0_u64, 0_u64, 0_u64, 0_u64, 0_u64);
    rt.block_on(async {
        let mut after: Option<String> = None;
        loop {
            let page = payments
                .list_intents(after.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("listing PaymentIntents: {e}"))?;
            for pi in &page.data {
                checked += 1;
                if progress && checked % 100 == 0 {
                    eprint!("\rchecked {checked} PaymentIntents");
                }
                let created = pi.get("created").and_then(int).unwrap_or(0);
                if since_ts.is_some_and(|s| created < s) {
                    continue;
                }
                let id = pi
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let fact = match pi.get("status").and_then(|v| v.as_str()) {
                    Some("succeeded") => succeeded_fact(pi),
                    Some("canceled") => Some(Fact::PaymentCanceled {
                        payment_intent: id.clone(),
                        donation_id: pi.pointer("/metadata/donation_id").and_then(int),
                    }),
                    _ => None,
                };
                let Some(fact) = fact else { continue };
                let status = pi
                    .get("status")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let outcome = writer
                    .submit(ApplyStripeEvent {
                        event_id: format!("reconcile:{id}:{status}"),
                        event_type: format!("reconcile.{status}"),
                        created,
                        fact: fact.clone(),
                        keep_unknown: false,
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
                match (outcome, &fact) {
                    (
                        EventOutcome::Applied,
                        Fact::PaymentSucceeded {
                            amount,
                            donation_id,
                            ..
                        },
                    ) => {
                        recorded += 1;
                        println!(
                            "recorded {id}: donation {} of {} {}",
                            donation_id.map_or_else(|| "?".into(), |d| d.to_string()),
                            config.fund.currency.format(*amount),
                            config.fund.currency.code()
                        );
                    }
                    (EventOutcome::Applied, _) => println!("marked {id} canceled"),
                    (EventOutcome::NotOurs, _) => foreign += 1,
                    (EventOutcome::Mismatch, _) => {
                        mismatched += 1;
                        println!(
                            "not credited {id}: it names a donation of another amount or currency (audit log: payment.mismatch)"
                        );
                    }
                    _ => known += 1,
                }
            }
            match page.next_after() {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        anyhow::Ok(())
    })?;
    if progress {
        eprintln!();
    }
    println!(
        "reconcile: checked {checked} PaymentIntents, recorded {recorded} missed donation(s), {known} already recorded, {foreign} not ours, {mismatched} not matching their donation"
    );
    let (listed, applied) = rt.block_on(apply_undelivered(&payments, &writer))?;
    println!(
        "reconcile: {listed} event(s) Stripe could not deliver in the last 30 days, {applied} applied now (the others were already recorded or are not ours)"
    );
    Ok(recorded)
}

/// Applies the events Stripe lists as not delivered (`delivery_success=false`, the last 30
/// days) through the webhook's own path: refunds, disputes and failures that the scan of
/// PaymentIntents cannot see. An event already recorded (by a later delivery) changes
/// nothing. Returns (events listed, events applied now).
async fn apply_undelivered(
    payments: &crate::payments::Payments,
    writer: &crate::ledger::LedgerWriter,
) -> anyhow::Result<(u64, u64)> {
    use crate::ledger::card::EventOutcome;

    let since = (chrono::Utc::now() - chrono::TimeDelta::days(30)).timestamp();
    let (mut listed, mut applied) = (0_u64, 0_u64);
    let mut after: Option<String> = None;
    loop {
        let page = payments
            .undelivered_events(since, after.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("listing undelivered events: {e}"))?;
        for json in &page.data {
            listed += 1;
            let event = match crate::payments::events::classify(&payments.owner, json) {
                Ok(event) => event,
                Err(e) => {
                    println!("skipped an unreadable event: {e}");
                    continue;
                }
            };
            let (id, kind) = (event.id.clone(), event.event_type.clone());
            let outcome = writer
                .submit(event.into_command())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            if matches!(outcome, EventOutcome::Applied | EventOutcome::Kept) {
                applied += 1;
                println!("applied undelivered event {id} ({kind})");
            }
        }
        match page.next_after() {
            Some(last) => after = Some(last),
            None => return Ok((listed, applied)),
        }
    }
}

/// `reconcile payouts`: reconciles paid payouts and prints each report; `Ok(false)` when any
/// payout does not balance.
pub fn reconcile_payouts(config: &mut Config, only: Option<&str>) -> anyhow::Result<bool> {
    let stripe_config = config
        .stripe
        .as_ref()
        .context("reconcile payouts needs STRIPE_SECRET_KEY (and the other STRIPE_* settings)")?;
    let payments = crate::payments::Payments::new(stripe_config)?;
    drop(connect(config)?);
    let pool = db::pool(&config.database_url, 2)?;
    let writer = writer(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ids: Vec<String> = match only {
            Some(id) => vec![id.to_owned()],
            None => payments
                .payouts()
                .await
                .map_err(|e| anyhow::anyhow!("listing payouts: {e}"))?
                .into_iter()
                .filter(|p| p.get("status").and_then(|s| s.as_str()) == Some("paid"))
                .filter_map(|p| p.get("id").and_then(|s| s.as_str()).map(str::to_owned))
                .collect(),
        };
        let mut balanced = true;
        for id in ids {
            let report = crate::payments::payouts::reconcile_payout(&payments, &pool, &id)
                .await
                .map_err(|e| anyhow::anyhow!("{id}: {}", e.detail))?;
            println!(
                "{id}: {} matched, {} missing in ledger, {} missing in Stripe, {} differences",
                report.matched,
                report.missing_in_ledger,
                report.missing_in_stripe,
                report.differences
            );
            for kind in ["missing_in_ledger", "missing_in_stripe", "differences"] {
                for line in report.report[kind].as_array().into_iter().flatten() {
                    println!("  {kind}: {line}");
                }
            }
            balanced &= report.missing_in_ledger == 0
                && report.missing_in_stripe == 0
                && report.differences == 0;
            writer
                .submit(report)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        }
        anyhow::Ok(balanced)
    })
}
