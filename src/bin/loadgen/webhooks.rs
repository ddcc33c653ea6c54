//! `loadgen webhooks`: creates pending card donations through the ledger (as
//! `POST /api/donations` would, without calling Stripe), then delivers their
//! `payment_intent.succeeded` events signed as Stripe signs them, optionally with duplicates
//! and in shuffled order, and checks that `/api/fund` moved by exactly their total.

use std::sync::Arc;

use anyhow::{Context, bail};
use crowdledger::money::Currency;

use super::{Args, Request, fire, raised_minor, report, wire};

/// Creates `count` pending card donations with intents `pi_load_<run>_<i>` through the ledger
/// writer (the commands `POST /api/donations` runs), returning `(donation id, intent)` pairs.
pub(crate) fn seed(
    database_url: &str,
    count: usize,
    amount: &str,
    run: &str,
) -> anyhow::Result<Vec<(i64, String)>> {
    use crowdledger::ledger::card::{AttachIntent, CardGift, CreateCardDonation, Created};
    let mut vars = std::collections::HashMap::new();
    vars.insert("DATABASE_URL".to_owned(), database_url.to_owned());
    let config = crowdledger::config::Config::from_lookup(|k| {
        vars.get(k).cloned().or_else(|| std::env::var(k).ok())
    })?;
    let writer = crowdledger::commands::writer(&config)?;
    let bounds = crowdledger::money::AmountBounds {
        min_minor: 1,
        max_minor: i64::MAX,
    };
    let donation = crowdledger::money::DonationAmount::parse(amount, config.fund.currency, bounds)
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut out = Vec::with_capacity(count);
        // A few thousand at a time: the writer's queue refuses (503) beyond its capacity.
        for start in (0..count).step_by(2_000) {
            let mut tasks = tokio::task::JoinSet::new();
            for i in start..(start + 2_000).min(count) {
                let writer = writer.clone();
                let pi = format!("pi_load_{run}_{i}");
                let gift = CardGift {
                    amount: donation,
                    amount_minor: donation.minor(),
                    donor_name: format!("Load {i}"),
                    email: format!("load{i}@example.org"),
                    anonymous: false,
                    locale: "en".into(),
                    fee_covered_minor: 0,
                };
                tasks.spawn(async move {
                    let created = writer
                        .submit(CreateCardDonation {
                            gift,
                            idempotency: None,
                            reservation_ttl: chrono::Duration::minutes(30),
                        })
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
                    let Created::New { donation_id } = created else {
                        bail!("unexpected replay")
                    };
                    writer
                        .submit(AttachIntent {
                            donation_id,
                            payment_intent: pi.clone(),
                            remember: None,
                            method_type: Some("card".into()),
                        })
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
                    anyhow::Ok((donation_id, pi))
                });
            }
            while let Some(r) = tasks.join_next().await {
                out.push(r??);
            }
        }
        anyhow::Ok(out)
    })
}

/// Parses a share such as `0.1` into per-mille, without floating point.
pub(crate) fn permille(text: &str) -> anyhow::Result<usize> {
    let minor = Currency::from_code("USD")
        .context("USD")?
        .parse_minor(text)
        .map_err(|e| anyhow::anyhow!("--duplicates: {e}"))?;
    let p = usize::try_from(minor * 10).unwrap_or(0);
    if p > 1000 {
        bail!("--duplicates must be between 0 and 1");
    }
    Ok(p)
}

/// How the events are delivered.
pub(crate) struct Delivery {
    /// Per mille of payments whose events are delivered twice.
    pub duplicates: usize,
    /// In random order.
    pub shuffle: bool,
    /// Each payment's amount.
    pub amount_minor: i64,
    /// With the method and processing events (`--new-states`).
    pub new_states: bool,
}

/// Delivers the events of `donations` and checks the total.
pub(crate) async fn run(
    args: &Args,
    client: &reqwest::Client,
    donations: Vec<(i64, String)>,
    secret: &str,
    how: Delivery,
) -> anyhow::Result<bool> {
    let Delivery {
        duplicates,
        shuffle,
        amount_minor,
        new_states,
    } = how;
    use rand::seq::SliceRandom;
    let (address, path) = wire::target(&format!("{}/webhooks/stripe", args.url))?;
    let now = chrono::Utc::now().timestamp();
    let mut reqs: Vec<Request> = Vec::with_capacity(donations.len() * 2);
    let signed = |event: serde_json::Value| {
        let event = event.to_string().into_bytes();
        let sig = crowdledger::payments::signature::sign(secret.as_bytes(), now, &event);
        wire::post(
            &address,
            &path,
            &[
                ("Stripe-Signature", &sig),
                ("Content-Type", "application/json"),
            ],
            &event,
        )
    };
    for (i, (id, pi)) in donations.iter().enumerate() {
        let intent = |kind: &str, status: &str| {
            serde_json::json!({
                "id": format!("evt_{kind}_{pi}"), "object": "event", "type": kind,
                "api_version": "2026-09-30", "created": now, "livemode": false,
                "data": { "object": {
                    "id": pi, "object": "payment_intent", "amount": amount_minor, "amount_received": amount_minor,
                    "currency": "usd", "status": status, "latest_charge": format!("ch_{pi}"),
                    "metadata": { "donation_id": id.to_string() },
                }},
            })
        };
        let charge = |kind: &str, method: &str| {
            serde_json::json!({
                "id": format!("evt_{kind}_{pi}"), "object": "event", "type": kind,
                "api_version": "2026-09-30", "created": now, "livemode": false,
                "data": { "object": {
                    "id": format!("ch_{pi}"), "object": "charge", "amount": amount_minor,
                    "payment_intent": pi, "payment_method_details": { "type": method, method: {} },
                }},
            })
        };
        let mut events = vec![intent("payment_intent.succeeded", "succeeded")];
        if new_states {
            if i % 4 == 0 {
                events.push(intent("payment_intent.processing", "processing"));
                events.push(charge("charge.pending", "us_bank_account"));
            } else {
                events.push(charge("charge.succeeded", "card"));
            }
        }
        for event in events {
            let request = signed(event);
            // Every donation whose position falls in the first `duplicates` of each thousand
            // has its events delivered twice.
            if i % 1000 < duplicates {
                reqs.push(request.clone());
            }
            reqs.push(request);
        }
    }
    if shuffle {
        reqs.shuffle(&mut rand::rng());
    }
    let before = raised_minor(client, &args.url).await?;
    let (lat, failures, elapsed) = fire(&address, args.clients, Arc::new(reqs), 200).await;
    let after = raised_minor(client, &args.url).await?;
    let expected = i64::try_from(donations.len())? * amount_minor;
    Ok(report(
        args,
        "webhooks",
        &lat,
        failures,
        elapsed,
        after - before,
        expected,
    ))
}
