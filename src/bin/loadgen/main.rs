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
//! starts (`wire.rs`), so the tool takes little of the CPU it shares with the server.
//!
//! `cargo run --release --bin loadgen -- offline --email E --clients 8 --requests 20000`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use crowdledger::money::Currency;

mod burst;
mod offline;
mod webhooks;
mod wire;

#[derive(Parser, Debug)]
#[command(about = "Drives a running crowdledger with concurrent clients and checks the total")]
pub(crate) struct Args {
    /// Base URL of the server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// Concurrent clients.
    #[arg(long, global = true, default_value_t = 8)]
    pub(crate) clients: usize,
    /// Label printed with the results.
    #[arg(long, global = true, default_value = "run")]
    pub(crate) label: String,
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
        /// Each payment also sends the `charge.succeeded` naming its method, and every fourth
        /// is a bank debit that was `processing` first (`payment_intent.processing` and
        /// `charge.pending`, then the success): the states of issue 20.
        #[arg(long)]
        new_states: bool,
    },
    /// A fixed-rate burst of `POST /api/donations` from one client beside a human donor.
    Burst(burst::Burst),
}

pub(crate) async fn raised_minor(client: &reqwest::Client, url: &str) -> anyhow::Result<i64> {
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
pub(crate) fn percentile(sorted: &[Duration], permille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * permille / 1000).min(sorted.len() - 1)]
}

/// Milliseconds with three decimals, without floating point.
pub(crate) fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// A request to send, as bytes on the wire (see `wire`).
pub(crate) type Request = Vec<u8>;

/// Sends every request once with `clients` concurrent clients, each on its own keep-alive
/// connection to `address`; returns latencies, failures and the elapsed time. A request
/// succeeds on `expect` status.
pub(crate) async fn fire(
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
            wire::Connection::new(address),
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

pub(crate) fn report(
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Mode::Burst(b) = &args.mode {
        return burst::run(&args.url, &args.label, b);
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
            let s = webhooks::seed(database_url, *count, amount, &run)?;
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
            } => offline::run(&args, &client, email, password, *requests, amount).await,
            Mode::Webhooks {
                secret,
                duplicates,
                shuffle,
                amount,
                new_states,
                ..
            } => {
                let amount_minor = Currency::USD
                    .parse_minor(amount)
                    .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
                let donations = seeded.unwrap_or_default();
                webhooks::run(
                    &args,
                    &client,
                    donations,
                    secret,
                    webhooks::Delivery {
                        duplicates: webhooks::permille(duplicates)?,
                        shuffle: *shuffle,
                        amount_minor,
                        new_states: *new_states,
                    },
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
