//! Faults: the server killed with SIGKILL in the middle of a burst of webhooks, and
//! PostgreSQL stopped under load. The server runs as a separate process (the real binary) so
//! it can really be killed; Stripe's side is played as Stripe plays it: every event is
//! delivered until it is acknowledged with a 2xx, in any order, more than once.
//!
//! Sizes: `FAULT_EVENTS` (default 5,000) events in the crash test, `OUTAGE_SECS` (default 30)
//! seconds of PostgreSQL outage. Each test prints its figures (RELIABILITY.md quotes them).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crowdledger::config::{Config, DatabaseUrl};
use crowdledger::ledger::card::CardGift;
use crowdledger::money::{AmountBounds, Currency, DonationAmount};
use diesel::prelude::*;
use rand::seq::SliceRandom;

use crate::helpers::{JWT_SECRET, engine_is_postgres, fresh_database};

const SECRET: &str = "whsec_faults_0123456789";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

/// One signed `payment_intent.succeeded` delivery.
#[derive(Clone)]
struct Event {
    id: String,
    body: String,
    amount_minor: i64,
}

/// Creates `n` pending card donations (as `POST /api/donations` would, without Stripe) and
/// their success events, with amounts that differ so a lost or doubled event shows in the sum.
async fn seed(url: &DatabaseUrl, n: usize) -> Vec<Event> {
    let text = url_text(url);
    let config =
        Config::from_lookup(|k| (k == "DATABASE_URL").then(|| text.clone())).expect("config");
    let mut conn = crowdledger::db::establish(url).expect("database");
    crowdledger::db::migrate(&mut conn).expect("migrations");
    drop(conn);
    let writer = crowdledger::commands::writer(&config).expect("writer");
    let bounds = AmountBounds {
        min_minor: 1,
        max_minor: i64::MAX,
    };
    let mut events = Vec::with_capacity(n);
    for start in (0..n).step_by(1_000) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in start..(start + 1_000).min(n) {
            let writer = writer.clone();
            let amount_minor = 100 + i64::try_from(i % 997).expect("small");
            let text = format!("{}.{:02}", amount_minor / 100, amount_minor % 100);
            let amount = DonationAmount::parse(&text, Currency::USD, bounds).expect("amount");
            tasks.spawn(async move {
                let gift = CardGift {
                    amount,
                    amount_minor,
                    donor_name: format!("Crash {i}"),
                    email: format!("crash{i}@example.org"),
                    anonymous: false,
                    locale: "en".into(),
                    fee_covered_minor: 0,
                };
                let pi = format!("pi_fault_{i}");
                let donation_id = crate::helpers::pending_card_donation(&writer, gift, &pi).await;
                let body = serde_json::json!({
                    "id": format!("evt_{pi}"), "object": "event",
                    "type": "payment_intent.succeeded", "api_version": "2026-09-30",
                    "created": 1_780_000_000, "livemode": false,
                    "data": { "object": {
                        "id": pi, "object": "payment_intent", "amount": amount_minor,
                        "amount_received": amount_minor, "currency": "usd", "status": "succeeded",
                        "latest_charge": format!("ch_{pi}"),
                        "metadata": { "donation_id": donation_id.to_string() },
                    }},
                })
                .to_string();
                Event {
                    id: format!("evt_{pi}"),
                    body,
                    amount_minor,
                }
            });
        }
        while let Some(e) = tasks.join_next().await {
            events.push(e.expect("seed task"));
        }
    }
    events
}

/// The real binary serving `url` on a free port, with Stripe configured (its API address is
/// closed, so fee look-ups fail fast and are left to the sweep; `start_with_stripe` names
/// another address).
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    async fn start(url: &DatabaseUrl, log: &std::path::Path) -> Server {
        Server::start_with_stripe(url, log, "http://127.0.0.1:9").await
    }

    async fn start_with_stripe(url: &DatabaseUrl, log: &std::path::Path, api: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_crowdledger"))
            .arg("serve")
            .env("DATABASE_URL", url_text(url))
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", JWT_SECRET)
            .env("HTTP_WORKERS", "2")
            .env("DATABASE_POOL_SIZE", "3")
            .env("STRIPE_SECRET_KEY", "sk_test_faults")
            .env("STRIPE_PUBLISHABLE_KEY", "pk_test_faults")
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_API_BASE", api)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("server starts");
        let server = Server {
            child,
            addr: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/healthz", server.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not answer /healthz");
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How deliveries went, by outcome.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
    server_errors: AtomicUsize,
    other_status: AtomicUsize,
    connection_errors: AtomicUsize,
    acked: Mutex<HashSet<String>>,
}

impl Tally {
    fn line(&self) -> String {
        format!(
            "200={} 503={} 5xx_other={} other_status={} connection_errors={}",
            self.ok.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.server_errors.load(Ordering::Relaxed),
            self.other_status.load(Ordering::Relaxed),
            self.connection_errors.load(Ordering::Relaxed),
        )
    }
}

/// Delivers one event once; true if acknowledged.
async fn deliver(client: &reqwest::Client, addr: &str, e: &Event, tally: &Tally) -> bool {
    let now = chrono::Utc::now().timestamp();
    let sig = crowdledger::payments::signature::sign(SECRET.as_bytes(), now, e.body.as_bytes());
    let sent = client
        .post(format!("{addr}/webhooks/stripe"))
        .header("Stripe-Signature", sig)
        .header("content-type", "application/json")
        .body(e.body.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let counter = match &sent {
        Ok(r) if r.status().is_success() => &tally.ok,
        Ok(r) if r.status() == 503 => &tally.unavailable,
        Ok(r) if r.status().is_server_error() => &tally.server_errors,
        Ok(_) => &tally.other_status,
        Err(_) => &tally.connection_errors,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let ok = sent.is_ok_and(|r| r.status().is_success());
    if ok {
        tally.acked.lock().expect("tally").insert(e.id.clone());
    }
    ok
}

/// `clients` concurrent deliverers over `events`. With `retry`, each event is delivered
/// until acknowledged (pausing `retry` between attempts), as Stripe does; without, each is
/// tried once. Stops early when `stop` is set.
async fn deliver_all(
    addr: String,
    events: Arc<Vec<Event>>,
    clients: usize,
    retry: Option<Duration>,
    tally: Arc<Tally>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (addr, events, tally, next, stop) = (
            addr.clone(),
            Arc::clone(&events),
            Arc::clone(&tally),
            Arc::clone(&next),
            Arc::clone(&stop),
        );
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            while let Some(e) = events.get(next.fetch_add(1, Ordering::Relaxed)) {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ok = deliver(&client, &addr, e, &tally).await;
                    match retry {
                        Some(pause) if !ok => tokio::time::sleep(pause).await,
                        _ => break,
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Event ids recorded in the database.
fn recorded_events(url: &DatabaseUrl) -> HashSet<String> {
    use crowdledger::db::schema::stripe_events;
    let mut conn = crowdledger::db::establish(url).expect("database reachable");
    stripe_events::table
        .select(stripe_events::event_id)
        .load::<String>(&mut conn)
        .expect("events")
        .into_iter()
        .collect()
}

async fn raised_minor(addr: &str) -> i64 {
    let fund: serde_json::Value = reqwest::get(format!("{addr}/api/fund"))
        .await
        .expect("fund")
        .json()
        .await
        .expect("fund json");
    Currency::USD
        .parse_minor(fund["raised"].as_str().expect("raised"))
        .expect("raised parses")
}

/// Checks the end state: every event applied once, raised equals the model, the CLI's
/// `verify` passes.
async fn assert_converged(url: &DatabaseUrl, addr: &str, events: &[Event]) {
    let model: i64 = events.iter().map(|e| e.amount_minor).sum();
    assert_eq!(raised_minor(addr).await, model, "raised equals the model");
    let recorded = recorded_events(url);
    assert_eq!(recorded.len(), events.len(), "each event recorded once");
    assert!(events.iter().all(|e| recorded.contains(&e.id)));
    let mut conn = crowdledger::db::establish(url).expect("database reachable");
    let report = crowdledger::ledger::verify::verify(&mut conn).expect("verify runs");
    assert!(report.problems.is_empty(), "verify: {:?}", report.problems);
    assert_eq!(report.raised_minor, model);
    assert_eq!(
        report.donation_count,
        i64::try_from(events.len()).expect("count")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_crowdledger"))
        .arg("verify")
        .env("DATABASE_URL", url_text(url))
        .output()
        .expect("crowdledger verify");
    assert!(
        out.status.success(),
        "crowdledger verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Stripe unreachable during a burst: every donation is recorded, and the fee look-ups do not
/// cost a connection attempt each. After one fails to reach Stripe the rest are left to the
/// sweep, which runs every 30 s here (the default reservation lifetime's quarter, capped), so
/// not within the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_stripe_is_not_asked_for_every_fee() {
    let n = 40;
    let (url, _dir) = fresh_database();
    let logs = tempfile::tempdir().expect("log dir");
    let events = seed(&url, n).await;
    let expected: i64 = events.iter().map(|e| e.amount_minor).sum();
    // "Stripe": accepts each connection and closes it at once, counting them.
    let stripe = std::net::TcpListener::bind("127.0.0.1:0").expect("stripe port");
    let api = format!("http://{}", stripe.local_addr().expect("addr"));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    std::thread::spawn(move || {
        for conn in stripe.incoming() {
            counted.fetch_add(1, Ordering::Relaxed);
            drop(conn);
        }
    });
    let server = Server::start_with_stripe(&url, &logs.path().join("server.log"), &api).await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    deliver_all(
        server.addr.clone(),
        Arc::new(events),
        4,
        Some(Duration::from_millis(50)),
        Arc::clone(&tally),
        stop,
    )
    .await;
    assert_eq!(
        tally.ok.load(Ordering::Relaxed),
        n,
        "every event acknowledged"
    );
    assert_eq!(raised_minor(&server.addr).await, expected);
    // Let the follow-ups run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tried = attempts.load(Ordering::Relaxed);
    assert!(tried >= 1, "no fee look-up was tried at all");
    assert!(
        tried < 10,
        "{tried} connection attempts to an unreachable Stripe for {n} donations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_burst_loses_and_doubles_nothing() {
    let n = env_or("FAULT_EVENTS", 5_000);
    let (url, dir) = fresh_database();
    let logs = tempfile::tempdir().expect("log dir");
    let mut events = seed(&url, n).await;
    events.shuffle(&mut rand::rng());
    let events = Arc::new(events);

    // The burst, with SIGKILL once a third of it is acknowledged.
    let mut server = Server::start(&url, &logs.path().join("first.log")).await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burst = tokio::spawn(deliver_all(
        server.addr.clone(),
        Arc::clone(&events),
        16,
        None,
        Arc::clone(&tally),
        Arc::clone(&stop),
    ));
    let started = Instant::now();
    while tally.ok.load(Ordering::Relaxed) < n / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "burst stalled"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let killed_after = tally.ok.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    burst.await.expect("burst ends");

    // Acknowledged means committed: every 200 is in the database after the kill.
    let acked = tally.acked.lock().expect("tally").clone();
    let on_disk = recorded_events(&url);
    let missing = acked.difference(&on_disk).count();
    println!(
        "crash ({}): {n} events, SIGKILL after {killed_after} acknowledgements; {} acknowledged \
         in all, {} recorded on disk, {missing} acknowledged but missing; burst: {}",
        if engine_is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        acked.len(),
        on_disk.len(),
        tally.line(),
    );
    assert_eq!(missing, 0, "an acknowledged event was lost");
    assert!(on_disk.len() < n, "the kill came before the burst ended");

    // Stripe redelivers everything (the acknowledged ones too, as after a timeout), in a new
    // order, until each is acknowledged.
    let server = Server::start(&url, &logs.path().join("second.log")).await;
    let mut again = events.to_vec();
    again.shuffle(&mut rand::rng());
    let redelivery = Arc::new(Tally::default());
    let t = Instant::now();
    deliver_all(
        server.addr.clone(),
        Arc::new(again),
        16,
        Some(Duration::from_millis(100)),
        Arc::clone(&redelivery),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .await;
    println!(
        "crash: redelivered {n} in {} ms: {}",
        t.elapsed().as_millis(),
        redelivery.line()
    );
    assert_eq!(redelivery.server_errors.load(Ordering::Relaxed), 0);
    assert_converged(&url, &server.addr, &events).await;
    drop(dir);
}

/// A PostgreSQL cluster of the test's own (Debian's server binaries, a temporary data
/// directory, a free port), so stopping it does not disturb the other tests.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_ctl").exists())
            .expect("pg_ctl");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = PrivatePostgres {
            bin,
            data,
            port,
            _dir: dir,
        };
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(pg._dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster's directory");
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.up();
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let out = cmd.args(args).output().expect(tool);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.display()
        );
        let data = self.data.display().to_string();
        let log = format!("{data}/server.log");
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stops the server the way a crash or an operator's emergency stop does.
    fn down(&self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        if is_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_gives_503_then_converges() {
    if !engine_is_postgres() {
        println!("outage: PostgreSQL-only (run with TEST_DATABASE=postgres)");
        return;
    }
    let outage = Duration::from_secs(u64::try_from(env_or("OUTAGE_SECS", 30)).expect("secs"));
    let n = env_or("OUTAGE_EVENTS", 3_000);
    let pg = PrivatePostgres::start();
    let mut admin = PgConnection::establish(&pg.url("postgres")).expect("private PostgreSQL");
    diesel::connection::SimpleConnection::batch_execute(&mut admin, "CREATE DATABASE fund")
        .expect("create database");
    drop(admin);
    let url = DatabaseUrl::Postgres(pg.url("fund"));
    let logs = tempfile::tempdir().expect("log dir");
    let events = Arc::new(seed(&url, n).await);
    let server = Server::start(&url, &logs.path().join("server.log")).await;

    // Deliveries paced like a busy day (8 clients), each retried until acknowledged.
    let tally = Arc::new(Tally::default());
    let delivering = tokio::spawn({
        let (addr, events, tally) = (server.addr.clone(), Arc::clone(&events), Arc::clone(&tally));
        async move {
            deliver_all(
                addr,
                events,
                8,
                Some(Duration::from_millis(250)),
                tally,
                Arc::new(std::sync::atomic::AtomicBool::new(false)),
            )
            .await;
        }
    });
    while tally.ok.load(Ordering::Relaxed) < n / 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pg.down();
    let before = tally.ok.load(Ordering::Relaxed);
    let down_at = Instant::now();
    // During the outage: webhooks are refused with 503, and the fund page still answers
    // from the last published figures.
    let mut fund_ok = 0;
    let mut not_ready = 0;
    while down_at.elapsed() < outage {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if reqwest::get(format!("{}/api/fund", server.addr))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            fund_ok += 1;
        }
        if reqwest::get(format!("{}/readyz", server.addr))
            .await
            .is_ok_and(|r| r.status() == 503)
        {
            not_ready += 1;
        }
    }
    let during = tally.line();
    let ok_during = tally.ok.load(Ordering::Relaxed) - before;
    let up_at = Instant::now();
    pg.up();
    let recovered = loop {
        let ok = tally.ok.load(Ordering::Relaxed);
        if ok > before + ok_during || up_at.elapsed() > Duration::from_secs(60) {
            break up_at.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::timeout(Duration::from_secs(120), delivering)
        .await
        .expect("deliveries finish after PostgreSQL returns")
        .expect("deliveries");
    println!(
        "outage: {n} events, PostgreSQL down {} s after {before} acknowledgements; during the \
         outage: {during}, {ok_during} acknowledged, /api/fund answered {fund_ok} of {} polls; \
         first acknowledgement {} ms after PostgreSQL was started again; in all: {}",
        outage.as_secs(),
        outage.as_secs(),
        recovered.as_millis(),
        tally.line()
    );
    assert!(
        tally.unavailable.load(Ordering::Relaxed) > 0,
        "the outage was seen as 503"
    );
    assert_eq!(tally.server_errors.load(Ordering::Relaxed), 0, "no 500s");
    assert_eq!(tally.other_status.load(Ordering::Relaxed), 0);
    assert!(fund_ok > 0, "/api/fund answers during the outage");
    assert!(not_ready > 0, "/readyz says 503 while PostgreSQL is down");
    assert!(recovered < Duration::from_secs(60), "recovered by itself");
    assert_converged(&url, &server.addr, &events).await;
    let ready = reqwest::get(format!("{}/readyz", server.addr))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "ready again once PostgreSQL is back");
}
