//! Load tool: records offline gifts with C concurrent clients against a running server,
//! then checks that `/api/fund` moved by exactly the expected total.
//!
//! `cargo run --release --bin loadgen -- --url http://127.0.0.1:8080 --email E --password P
//!  --clients 8 --requests 20000`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use crowdledger::money::Currency;

#[derive(Parser, Debug)]
#[command(about = "Posts offline gifts with concurrent clients and checks the total")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Treasurer's email (to log in).
    #[arg(long)]
    email: String,
    /// Treasurer's password.
    #[arg(long, env = "LOADGEN_PASSWORD")]
    password: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Gifts to record in all.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Amount of each gift.
    #[arg(long, default_value = "0.01")]
    amount: String,
    /// Label printed with the results.
    #[arg(long, default_value = "run")]
    label: String,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let amount_minor = Currency::USD
        .parse_minor(&args.amount)
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let login: serde_json::Value = client
        .post(format!("{}/api/auth/login", args.url))
        .json(&serde_json::json!({ "email": args.email, "password": args.password }))
        .send()
        .await?
        .json()
        .await?;
    let token = Arc::new(
        login["access_token"]
            .as_str()
            .context("login failed (is the user a treasurer?)")?
            .to_owned(),
    );
    let before = raised_minor(&client, &args.url).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(serde_json::json!({
        "amount": args.amount, "donor_name": "Load Test", "method": "check", "reference": "load"
    }));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let (client, token, next, body) = (
            client.clone(),
            Arc::clone(&token),
            Arc::clone(&next),
            Arc::clone(&body),
        );
        let url = format!("{}/api/donations/offline", args.url);
        let total = args.requests;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0_usize;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .bearer_auth(token.as_str())
                    .json(body.as_ref())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 201);
                latencies.push(t.elapsed());
                if !ok {
                    failures += 1;
                }
            }
            (latencies, failures)
        });
    }
    let mut latencies = Vec::with_capacity(args.requests);
    let mut failures = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, f) = r?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let after = raised_minor(&client, &args.url).await?;
    let expected = i64::try_from(args.requests - failures)? * amount_minor;
    let rate = args.requests as u128 * 1_000_000 / elapsed.as_micros().max(1);
    println!(
        "{label}: clients={c} gifts={n} failures={failures} elapsed_ms={s} donations_per_sec={rate} p50_ms={p50} p95_ms={p95} p99_ms={p99} raised_delta={d} expected={expected} check={check}",
        label = args.label,
        c = args.clients,
        n = args.requests,
        s = ms(elapsed),
        p50 = ms(percentile(&latencies, 500)),
        p95 = ms(percentile(&latencies, 950)),
        p99 = ms(percentile(&latencies, 990)),
        d = after - before,
        check = if after - before == expected && failures == 0 {
            "OK"
        } else {
            "MISMATCH"
        },
    );
    if after - before != expected || failures > 0 {
        bail!(
            "raised moved by {} minor units, expected {expected}; {failures} failures",
            after - before
        );
    }
    Ok(())
}
