//! `loadgen burst`: one client sends `POST /api/donations` at a fixed rate (default 1,000 a
//! second for 10 s, open loop) while a second client gives at a human pace; prints what each
//! got. The first must be throttled (429 with `Retry-After`), the second must always get 201.
//!
//! The clients are told apart by their address: by default each binds its own loopback
//! address (127.0.0.2 and 127.0.0.3; Linux routes all of 127/8 to lo), so the server keys them
//! by TCP peer. With `--via X-Forwarded-For` they send that header instead, for a server run
//! with `TRUSTED_PROXY_HEADER=X-Forwarded-For TRUSTED_PROXIES=127.0.0.1`.
//!
//! `cargo run --release --bin loadgen -- burst --rate 1000 --seconds 10`

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{ms, percentile};

/// Options of `loadgen burst`.
#[derive(clap::Args, Debug)]
pub struct Burst {
    /// Requests per second from the bursting client.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds the burst lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Milliseconds between the second client's donations.
    #[arg(long, default_value_t = 2000)]
    human_every_ms: u64,
    /// `peer` (each client binds its own address) or a header to send the address in.
    #[arg(long, default_value = "peer")]
    via: String,
    /// The bursting client's address.
    #[arg(long, default_value = "127.0.0.2")]
    burst_ip: IpAddr,
    /// The human client's address.
    #[arg(long, default_value = "127.0.0.3")]
    human_ip: IpAddr,
    /// Amount of each donation.
    #[arg(long, default_value = "5.00")]
    amount: String,
    /// Most requests of the burst in flight at once.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
}

/// What one request got.
struct Outcome {
    status: u16,
    retry_after: Option<u64>,
    latency: Duration,
}

struct Client {
    http: reqwest::Client,
    url: String,
    header: Option<(String, String)>,
    body: String,
}

impl Client {
    fn new(url: &str, b: &Burst, ip: IpAddr, donor: &str) -> anyhow::Result<Client> {
        let peer = b.via == "peer";
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(b.max_in_flight)
            .timeout(Duration::from_secs(60));
        if peer {
            builder = builder.local_address(ip);
        }
        Ok(Client {
            http: builder.build()?,
            url: format!("{url}/api/donations"),
            header: (!peer).then(|| (b.via.clone(), ip.to_string())),
            body: serde_json::json!({
                "amount": b.amount, "donor_name": donor, "email": "burst@example.org",
                "anonymous": false, "locale": "en",
            })
            .to_string(),
        })
    }

    async fn donate(&self) -> Outcome {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(self.body.clone());
        if let Some((k, v)) = &self.header {
            req = req.header(k, v);
        }
        let t = Instant::now();
        match req.send().await {
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let status = resp.status().as_u16();
                // Read the body so the connection is reused.
                let _ = resp.bytes().await;
                Outcome {
                    status,
                    retry_after,
                    latency: t.elapsed(),
                }
            }
            Err(_) => Outcome {
                status: 0,
                retry_after: None,
                latency: t.elapsed(),
            },
        }
    }
}

/// Counts by status, with "other" for anything but 201 and 429 (0 is a transport error).
fn tally(outcomes: &[Outcome]) -> (usize, usize, Vec<u16>) {
    let created = outcomes.iter().filter(|o| o.status == 201).count();
    let limited = outcomes.iter().filter(|o| o.status == 429).count();
    let other = outcomes
        .iter()
        .map(|o| o.status)
        .filter(|s| *s != 201 && *s != 429)
        .collect();
    (created, limited, other)
}

fn latencies(outcomes: &[Outcome]) -> String {
    let mut l: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    l.sort();
    format!(
        "p50 {} ms, p99 {} ms, max {} ms",
        ms(percentile(&l, 500)),
        ms(percentile(&l, 990)),
        ms(l.last().copied().unwrap_or_default())
    )
}

/// Runs the burst and the human client side by side and prints the figures; fails if the
/// human client was ever refused.
pub fn run(url: &str, label: &str, b: &Burst) -> anyhow::Result<()> {
    if b.rate == 0 || b.seconds == 0 {
        bail!("--rate and --seconds must be above zero");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let burster = Arc::new(Client::new(url, b, b.burst_ip, "Burst Script")?);
        let human = Arc::new(Client::new(url, b, b.human_ip, "Ann Lee")?);
        let total = u64::from(b.rate) * u64::from(b.seconds);
        let window = Duration::from_secs(u64::from(b.seconds));
        let started = tokio::time::Instant::now();

        let human_task = {
            let human = Arc::clone(&human);
            let every = Duration::from_millis(b.human_every_ms.max(1));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut next = started;
                while next.duration_since(started) < window {
                    tokio::time::sleep_until(next).await;
                    outcomes.push(human.donate().await);
                    next += every;
                }
                outcomes
            })
        };

        let in_flight = Arc::new(tokio::sync::Semaphore::new(b.max_in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            let due = started + Duration::from_nanos(i * 1_000_000_000 / u64::from(b.rate));
            tokio::time::sleep_until(due).await;
            let permit = Arc::clone(&in_flight).acquire_owned().await?;
            let burster = Arc::clone(&burster);
            tasks.spawn(async move {
                let outcome = burster.donate().await;
                drop(permit);
                outcome
            });
        }
        let sent_in = started.elapsed();
        let mut burst = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        while let Some(o) = tasks.join_next().await {
            burst.push(o?);
        }
        let human = human_task.await?;

        let (created, limited, other) = tally(&burst);
        let with_retry_after: Vec<u64> = burst
            .iter()
            .filter(|o| o.status == 429)
            .filter_map(|o| o.retry_after)
            .collect();
        let per_sec = u128::from(total) * 1000 / sent_in.as_millis().max(1);
        println!(
            "{label}: burst from {}: {total} requests sent in {} ms ({per_sec}/s): \
             201 x {created}, 429 x {limited} ({} with Retry-After, {}..{} s), other x {} {:?}",
            b.burst_ip,
            sent_in.as_millis(),
            with_retry_after.len(),
            with_retry_after.iter().min().copied().unwrap_or(0),
            with_retry_after.iter().max().copied().unwrap_or(0),
            other.len(),
            &other[..other.len().min(10)],
        );
        println!("{label}: burst latency {}", latencies(&burst));
        let (h_created, h_limited, h_other) = tally(&human);
        println!(
            "{label}: human from {}: {} donations, 201 x {h_created}, 429 x {h_limited}, other x {} {:?}; latency {}",
            b.human_ip,
            human.len(),
            h_other.len(),
            h_other,
            latencies(&human)
        );
        if h_created != human.len() {
            bail!("the second client was refused while the burst ran");
        }
        if limited == 0 {
            bail!("the burst was not throttled");
        }
        Ok(())
    })
}
