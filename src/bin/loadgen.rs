//! Load tool. Two modes, both checking at the end that `/api/fund` moved by exactly the
//! expected total:
//!
//! - `loadgen offline`: records offline gifts through the treasurer API.
//! - `loadgen webhooks`: creates N pending card donations through the ledger (as
//!   `POST /api/donations` would, without calling Stripe), then delivers their
//!   `payment_intent.succeeded` events signed with the webhook secret exactly as Stripe signs
//!   them, optionally with duplicates and in shuffled order.
//!
//! Each client keeps one HTTP/1.1 connection and sends requests written out before the clock
//! starts (`loadgen_wire`), so the tool takes little of the CPU it shares with the server.
//!
//! `cargo run --release --bin loadgen -- offline --email E --clients 8 --requests 20000`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use crowdledger::money::Currency;

mod loadgen_burst;
mod loadgen_wire;

#[derive(Parser, Debug)]
#[command(about = "Drives a running crowdledger with concurrent clients and checks the total")]
struct Args {
    /// Base URL of the server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients.
    #[arg(long, global = true, default_value_t = 8)]
    clients: usize,
    /// Label printed with the results.
    #[arg(long, global = true, default_value = "run")]
    label: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Offline gifts through `POST /api/donations/offline`.
    Offline {
        /// Treasurer's email (to log in).
        #[arg(long)]
        email: String,
        /// Treasurer's password.
        #[arg(long, env = "LOADGEN_PASSWORD")]
        password: String,
        /// Gifts to record in all.
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
        /// Amount of each gift.
        #[arg(long, default_value = "0.01")]
        amount: String,
    },
    /// Card donations confirmed by signed `payment_intent.succeeded` webhooks.
    Webhooks {
        /// Card donations to create and confirm.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// The server's database (the donations are created there, as the API would).
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The webhook signing secret the server verifies with.
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET")]
        secret: String,
        /// Share of events delivered twice (0.0 to 1.0), as Stripe may.
        #[arg(long, default_value = "0")]
        duplicates: String,
        /// Deliver in random order.
        #[arg(long)]
        shuffle: bool,
        /// Amount of each donation.
        #[arg(long, default_value = "5.00")]
        amount: String,
    },
    /// A fixed-rate burst of `POST /api/donations` from one client beside a human donor.
    Burst(loadgen_burst::Burst),
}

async fn raised_minor(client: &reqwest::Client, url: &str) -> anyhow::Result<i64> {
    let fund: serde_json::Value = client
        .get(format!("{url}/api/fund"))
        .send()
        .await?
        .json()
        .await?;
    let raised = fund["raised"].as_str().context("raised is a string")?;
    Currency::USD
        .parse_minor(raised)
        .map_err(|e| anyhow::anyhow!("raised {raised:?}: {e}"))
}

/// The `permille`-th latency of a sorted list (500 = median).
fn percentile(sorted: &[Duration], permille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * permille / 1000).min(sorted.len() - 1)]
}

/// Milliseconds with three decimals, without floating point.
fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// A request to send, as bytes on the wire (see `loadgen_wire`).
type Request = Vec<u8>;

/// Sends every request once with `clients` concurrent clients, each on its own keep-alive
/// connection to `address`; returns latencies, failures and the elapsed time. A request
/// succeeds on `expect` status.
async fn fire(
    address: &str,
    clients: usize,
    requests: Arc<Vec<Request>>,
    expect: u16,
) -> (Vec<Duration>, usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (mut conn, next, requests) = (
            loadgen_wire::Connection::new(address),
            Arc::clone(&next),
            Arc::clone(&requests),
        );
        tasks.spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), 0_usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let ok = conn.send(request).await.is_ok_and(|s| s == expect);
                latencies.push(t.elapsed());
                failures += usize::from(!ok);
            }
            (latencies, failures)
        });
    }
    let mut latencies = Vec::with_capacity(requests.len());
    let mut failures = 0;
    while let Some(r) = tasks.join_next().await {
        if let Ok((l, f)) = r {
            latencies.extend(l);
            failures += f;
        }
    }
    latencies.sort();
    (latencies, failures, started.elapsed())
}

fn report(
    args: &Args,
    what: &str,
    latencies: &[Duration],
    failures: usize,
    elapsed: Duration,
    delta: i64,
    expected: i64,
) -> bool {
    let n = latencies.len();
    let rate = n as u128 * 1_000_000 / elapsed.as_micros().max(1);
    let ok = delta == expected && failures == 0;
    println!(
        "{label}: mode={what} clients={c} requests={n} failures={failures} elapsed_ms={e} per_sec={rate} p50_ms={p50} p95_ms={p95} p99_ms={p99} raised_delta={delta} expected={expected} check={check}",
        label = args.label,
        c = args.clients,
        e = ms(elapsed),
        p50 = ms(percentile(latencies, 500)),
        p95 = ms(percentile(latencies, 950)),
        p99 = ms(percentile(latencies, 990)),
        check = if ok { "OK" } else { "MISMATCH" },
    );
    ok
}

async fn offline(
    args: &Args,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    requests: usize,
    amount: &str,
) -> anyhow::Result<bool> {
    let amount_minor = Currency::USD
        .parse_minor(amount)
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    let login: serde_json::Value = client
        .post(format!("{}/api/auth/login", args.url))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("login failed (is the user a treasurer?)")?;
    let body = serde_json::json!({
        "amount": amount, "donor_name": "Load Test", "method": "check", "reference": "load"
    })
    .to_string()
    .into_bytes();
    let (address, path) = loadgen_wire::target(&format!("{}/api/donations/offline", args.url))?;
    let bearer = format!("Bearer {token}");
    let request = loadgen_wire::post(
        &address,
        &path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    let reqs: Vec<Request> = vec![request; requests];
    let before = raised_minor(client, &args.url).await?;
    let (lat, failures, elapsed) = fire(&address, args.clients, Arc::new(reqs), 201).await;
    let after = raised_minor(client, &args.url).await?;
    let expected = i64::try_from(requests - failures)? * amount_minor;
    Ok(report(
        args,
        "offline",
        &lat,
        failures,
        elapsed,
        after - before,
        expected,
    ))
}

/// Creates `count` pending card donations with intents `pi_load_<run>_<i>` through the ledger
/// writer (the commands `POST /api/donations` runs), returning `(donation id, intent)` pairs.
fn seed(
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
fn permille(text: &str) -> anyhow::Result<usize> {
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

async fn webhooks(
    args: &Args,
    client: &reqwest::Client,
    donations: Vec<(i64, String)>,
    secret: &str,
    duplicates: usize,
    shuffle: bool,
    amount_minor: i64,
) -> anyhow::Result<bool> {
    use rand::seq::SliceRandom;
    let (address, path) = loadgen_wire::target(&format!("{}/webhooks/stripe", args.url))?;
    let now = chrono::Utc::now().timestamp();
    let mut reqs: Vec<Request> = Vec::with_capacity(donations.len() * 2);
    for (i, (id, pi)) in donations.iter().enumerate() {
        let event = serde_json::json!({
            "id": format!("evt_{pi}"), "object": "event", "type": "payment_intent.succeeded",
            "api_version": "2026-09-30", "created": now, "livemode": false,
            "data": { "object": {
                "id": pi, "object": "payment_intent", "amount": amount_minor, "amount_received": amount_minor,
                "currency": "usd", "status": "succeeded", "latest_charge": format!("ch_{pi}"),
                "metadata": { "donation_id": id.to_string() },
            }},
        })
        .to_string()
        .into_bytes();
        let sig = crowdledger::payments::signature::sign(secret.as_bytes(), now, &event);
        let request = loadgen_wire::post(
            &address,
            &path,
            &[
                ("Stripe-Signature", &sig),
                ("Content-Type", "application/json"),
            ],
            &event,
        );
        // Every donation whose position falls in the first `duplicates` of each thousand is
        // delivered twice.
        if i % 1000 < duplicates {
            reqs.push(request.clone());
        }
        reqs.push(request);
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Mode::Burst(b) = &args.mode {
        return loadgen_burst::run(&args.url, &args.label, b);
    }
    let seeded = match &args.mode {
        Mode::Webhooks {
            count,
            database_url,
            amount,
            ..
        } => {
            let run = format!("{:x}", rand::random::<u32>());
            let started = Instant::now();
            let s = seed(database_url, *count, amount, &run)?;
            eprintln!(
                "seeded {} pending card donations in {} ms",
                s.len(),
                started.elapsed().as_millis()
            );
            Some(s)
        }
        Mode::Offline { .. } | Mode::Burst(_) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients)
            .build()?;
        match &args.mode {
            Mode::Offline {
                email,
                password,
                requests,
                amount,
            } => offline(&args, &client, email, password, *requests, amount).await,
            Mode::Webhooks {
                secret,
                duplicates,
                shuffle,
                amount,
                ..
            } => {
                let amount_minor = Currency::USD
                    .parse_minor(amount)
                    .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
                let donations = seeded.unwrap_or_default();
                webhooks(
                    &args,
                    &client,
                    donations,
                    secret,
                    permille(duplicates)?,
                    *shuffle,
                    amount_minor,
                )
                .await
            }
            Mode::Burst(_) => Ok(true),
        }
    })?;
    if !ok {
        bail!("the total did not move by exactly the expected amount");
    }
    Ok(())
}
