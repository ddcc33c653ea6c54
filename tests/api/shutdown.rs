//! Graceful stop: the real binary gets SIGTERM in the middle of a burst of offline gifts from
//! several keep-alive clients. It must exit 0 within `SHUTDOWN_TIMEOUT`, every gift answered
//! 201 must be in the database, none may be answered 201 once the stop began, and `verify`
//! must pass.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crowdledger::config::DatabaseUrl;
use diesel::prelude::*;

use crate::helpers::{JWT_SECRET, fresh_database, url_text};

const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
const CLIENTS: usize = 8;
const TREASURER: &str = "treasurer@example.org";
const PASSWORD: &str = "a long treasurer password 42";

/// The binary with the test's database and settings.
fn crowdledger(url: &DatabaseUrl) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crowdledger"));
    cmd.env("DATABASE_URL", url_text(url))
        .env("JWT_SECRET", JWT_SECRET)
        .env("DATABASE_POOL_SIZE", "3");
    cmd
}

/// `user add`, the password on stdin.
fn add_treasurer(url: &DatabaseUrl) {
    let mut child = crowdledger(url)
        .args(["user", "add", "--email", TREASURER, "--role", "treasurer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(PASSWORD.as_bytes())
        .expect("password written");
    assert!(child.wait().expect("user add ends").success(), "user add");
}

/// One gift's request: when it was sent, and what came back.
struct Attempt {
    sent: Instant,
    outcome: Outcome,
}

enum Outcome {
    /// 201, with the donation id and the amount as answered.
    Created(i64, String),
    /// Another status.
    Status(u16),
    /// The connection failed (the server stopped listening).
    NoConnection,
}

/// Posts one gift of `amount`.
async fn post_gift(http: &reqwest::Client, addr: &str, token: &str, amount: String) -> Attempt {
    let body = serde_json::json!({
        "amount": amount, "donor_name": "Ann Lee", "method": "check", "reference": "1001"
    });
    let sent = Instant::now();
    let resp = http
        .post(format!("{addr}/api/donations/offline"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    let outcome = match resp {
        Err(_) => Outcome::NoConnection,
        Ok(r) if r.status().as_u16() == 201 => {
            let v: serde_json::Value = r.json().await.expect("201 body");
            Outcome::Created(
                v["donation_id"].as_i64().expect("donation_id"),
                v["amount"].as_str().expect("amount").to_owned(),
            )
        }
        Ok(r) => Outcome::Status(r.status().as_u16()),
    };
    Attempt { sent, outcome }
}

/// Posts gifts until the server stops answering; returns every attempt.
async fn client(n: usize, addr: String, token: String) -> Vec<Attempt> {
    let http = reqwest::Client::new();
    let mut attempts = Vec::new();
    for seq in 0_u32.. {
        let amount = format!("{}.{:02}", n + 1, seq % 100);
        let attempt = post_gift(&http, &addr, &token, amount).await;
        let done = matches!(attempt.outcome, Outcome::NoConnection);
        attempts.push(attempt);
        if done {
            break;
        }
    }
    attempts
}

/// Every donation row: id → amount as the API writes it (two minor digits, USD).
fn stored_donations(url: &DatabaseUrl) -> HashMap<i64, String> {
    use crowdledger::db::schema::donations;
    let mut conn = crowdledger::db::establish(url).expect("database reachable");
    donations::table
        .select((donations::id, donations::amount_minor))
        .load::<(i64, i64)>(&mut conn)
        .expect("donations")
        .into_iter()
        .map(|(id, m)| (id, format!("{}.{:02}", m / 100, m % 100)))
        .collect()
}

/// Starts `serve` (log to `log_path`) with `env` over the test's settings, waits until it
/// answers, and logs the treasurer in: the process, its address and the token.
async fn serve(
    url: &DatabaseUrl,
    log_path: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = crowdledger(url)
        .arg("serve")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("HTTP_WORKERS", "2")
        .env("SHUTDOWN_TIMEOUT", format!("{SHUTDOWN_TIMEOUT_SECS}s"))
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path).expect("log file"))
        .spawn()
        .expect("server starts");
    let addr = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("{addr}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not answer /healthz");
    let login: serde_json::Value = http
        .post(format!("{addr}/api/auth/login"))
        .json(&serde_json::json!({ "email": TREASURER, "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let token = login["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    (child, addr, token)
}

/// Sends SIGTERM to `child`.
fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM");
}

/// Waits for `child` to exit, at most `within`; how long it took, or None (then it is killed).
async fn exit_within(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some((s, start.elapsed()));
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_burst_keeps_every_acknowledged_gift_and_acknowledges_none_after() {
    let (url, _dir) = fresh_database();
    add_treasurer(&url);
    let log_dir = tempfile::tempdir().expect("log dir");
    let log_path = log_dir.path().join("server.log");
    let (mut child, addr, token) = serve(&url, &log_path, &[]).await;

    // Act: a burst from several clients, SIGTERM in the middle of it.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(n, addr.clone(), token.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    // The stop began when the server says so (it logs the signal once new requests are
    // refused): only requests sent after that line was seen are held to "no 201".
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (watching, log_path) = (Arc::clone(&watching), log_path.clone());
        let (addr, token) = (addr.clone(), token.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("SIGTERM") {
                    let began = Instant::now();
                    // One more gift, on a new connection, surely sent after the stop began.
                    let http = reqwest::Client::new();
                    let late = post_gift(&http, &addr, &token, "9.99".into()).await;
                    return Some((began, late));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None
        })
    };
    let exit = exit_within(&mut child, Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5)).await;
    watching.store(false, Ordering::Relaxed);
    let seen = watcher.await.expect("log watcher");
    let mut attempts = Vec::new();
    for c in clients {
        attempts.extend(c.await.expect("client"));
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();

    // Assert.
    let (exit, stopped_in) = exit.unwrap_or_else(|| panic!("still running after SIGTERM\n{log}"));
    assert!(exit.success(), "exit status {exit}\n{log}");
    assert!(
        stopped_in <= Duration::from_secs(SHUTDOWN_TIMEOUT_SECS),
        "stopped in {stopped_in:?}, SHUTDOWN_TIMEOUT is {SHUTDOWN_TIMEOUT_SECS}s"
    );
    let (began, late) = seen.unwrap_or_else(|| panic!("the server never logged the stop\n{log}"));
    attempts.push(late);
    let stored = stored_donations(&url);
    let mut acked = 0;
    let mut after = 0;
    let mut refused = 0;
    for a in &attempts {
        if a.sent > began {
            after += 1;
        }
        match &a.outcome {
            Outcome::Created(id, amount) => {
                acked += 1;
                assert!(
                    a.sent <= began,
                    "donation {id} was acknowledged 201 to a request sent {:?} after the stop began",
                    a.sent - began
                );
                assert_eq!(
                    stored.get(id),
                    Some(amount),
                    "donation {id} ({amount}) was acknowledged but is not on disk as answered"
                );
            }
            Outcome::Status(s) => {
                assert_eq!(*s, 503, "only 503 while stopping");
                refused += 1;
            }
            Outcome::NoConnection => {}
        }
    }
    println!(
        "shutdown: {acked} gifts acknowledged and on disk ({} rows), {refused} refused with 503, \
         {after} requests sent after the stop began, exit 0 in {stopped_in:?}",
        stored.len()
    );
    assert!(acked >= CLIENTS, "the burst recorded gifts: {acked}");
    assert!(after > 0, "requests were sent once the stop began");
    // In order: the server stopped, then the writer after its last batch, then the rest.
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not logged\n{log}"))
    };
    assert!(
        at("HTTP server stopped") < at("ledger writer stopped"),
        "{log}"
    );
    assert!(
        at("ledger writer stopped") < at("ledger writer totals"),
        "{log}"
    );
    at("mailer stopped");
    let verified = crowdledger(&url)
        .arg("verify")
        .output()
        .expect("verify runs");
    assert!(
        verified.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

/// The receipt being sent when SIGTERM comes is finished and recorded as sent (else it would
/// go again at the next start); the next one is not started, and is left due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_mailer_finish_the_message_it_is_sending() {
    let (url, _dir) = fresh_database();
    add_treasurer(&url);
    // A mail server that takes 2 s to accept each message.
    let sink = crate::smtp::SmtpSink::start_slow(Duration::from_secs(2)).await;
    let log_dir = tempfile::tempdir().expect("log dir");
    let log_path = log_dir.path().join("server.log");
    let (mut child, addr, token) = serve(&url, &log_path, &[("SMTP_URL", &sink.url())]).await;
    let http = reqwest::Client::new();
    for donor in ["ann@example.org", "bo@example.org"] {
        let resp = http
            .post(format!("{addr}/api/donations/offline"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "amount": "50", "donor_name": "Ann Lee", "email": donor,
                "method": "check", "reference": "1001"
            }))
            .send()
            .await
            .expect("gift");
        assert_eq!(resp.status(), 201, "gift for {donor}");
    }
    // The first receipt is in the mail server's hands (it takes 2 s), the second waits.
    tokio::time::sleep(Duration::from_millis(700)).await;
    sigterm(&child);
    let exit = exit_within(&mut child, Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5)).await;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let (exit, took) = exit.unwrap_or_else(|| panic!("still running after SIGTERM\n{log}"));
    assert!(exit.success(), "exit status {exit}\n{log}");
    assert!(
        took <= Duration::from_secs(SHUTDOWN_TIMEOUT_SECS),
        "{took:?}"
    );
    // Whatever the sink still had under way has landed by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = sink.messages();
    assert_eq!(
        received.len(),
        1,
        "one receipt sent, the next not started: {received:?}"
    );
    use crowdledger::db::schema::outbox;
    let mut conn = crowdledger::db::establish(&url).expect("database reachable");
    let rows: Vec<(i64, Option<chrono::NaiveDateTime>, chrono::NaiveDateTime)> = outbox::table
        .select((outbox::id, outbox::sent_at, outbox::next_attempt_at))
        .order(outbox::id.asc())
        .load(&mut conn)
        .expect("outbox");
    assert_eq!(rows.len(), 2, "two receipts queued: {rows:?}");
    let sent: Vec<_> = rows.iter().filter(|r| r.1.is_some()).collect();
    assert_eq!(
        sent.len(),
        1,
        "the receipt the server accepted is recorded as sent (not sent again at the next \
         start): {rows:?}\n{log}"
    );
    let unsent = rows.iter().find(|r| r.1.is_none()).expect("one unsent");
    assert!(
        unsent.2 <= crowdledger::db::now(),
        "the receipt not started is due at once at the next start: {rows:?}"
    );
}
