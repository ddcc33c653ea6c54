//! Limits: per-client rate limits (and who the client is), bounded bodies on every route that
//! takes one, slow clients cut off, capped pages, and a burst that does not stop other donors.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem, gift, spawn_app, spawn_app_with};

/// `host:port` of the app.
fn host(app: &TestApp) -> String {
    app.addr.trim_start_matches("http://").to_owned()
}

/// A client whose connections come from `ip` (any 127/8 address reaches the app on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{}/api/auth/login", app.addr))
        .json(&json!({ "email": email, "password": password }));
    if let Some(f) = forwarded {
        req = req.header("X-Forwarded-For", f);
    }
    req.send().await.expect("login request")
}

/// Asserts a 429 `rate_limited` whose `Retry-After` is whole seconds, at least one, at most
/// `max`, and matches the body's `retry_after`.
async fn assert_limited(resp: reqwest::Response, max: u64) {
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!(
        (1..=max).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let problem = assert_problem(resp, 429, "rate_limited").await;
    assert_eq!(problem["retry_after"], retry_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donation_attempts_are_limited_per_client_address() {
    // No Stripe: an allowed attempt is 503 payments_unavailable, a refused one 429.
    let app = spawn_app_with(&[("RATE_LIMIT_DONATIONS", "3/min")]).await;
    for _ in 0..3 {
        assert_problem(app.donate("5.00").await, 503, "payments_unavailable").await;
    }
    // One attempt's worth of the minute is 20 s.
    assert_limited(app.donate("5.00").await, 20).await;
    // Invalid bodies count too: the limit is taken before the body is read.
    let resp = app
        .client
        .post(format!("{}/api/donations", app.addr))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("req");
    assert_limited(resp, 20).await;
    // With no trusted proxy, a forwarded-for header does not buy a new key.
    for spoof in ["203.0.113.7", "198.51.100.1, 203.0.113.8"] {
        let resp = app
            .client
            .post(format!("{}/api/donations", app.addr))
            .header("X-Forwarded-For", spoof)
            .json(&json!({ "amount": "5.00", "donor_name": "M", "email": "m@example.org" }))
            .send()
            .await
            .expect("req");
        assert_limited(resp, 20).await;
    }
    // Another address is unaffected.
    let other = client_from("127.0.0.2");
    let resp = other
        .post(format!("{}/api/donations", app.addr))
        .json(&json!({ "amount": "5.00", "donor_name": "Ann", "email": "ann@example.org" }))
        .send()
        .await
        .expect("req");
    assert_problem(resp, 503, "payments_unavailable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_key() {
    let app = spawn_app_with(&[
        ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_LOGIN", "2/min"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "off"),
    ])
    .await;
    let proxy = &app.client; // connects from 127.0.0.1, the trusted proxy
    for _ in 0..2 {
        let resp = login_from(&app, proxy, Some("203.0.113.1"), "a@example.org", "x").await;
        assert_problem(resp, 401, "unauthorized").await;
    }
    let resp = login_from(&app, proxy, Some("203.0.113.1"), "a@example.org", "x").await;
    assert_limited(resp, 30).await;
    // What the client itself wrote left of the proxy's entry changes nothing.
    let resp = login_from(
        &app,
        proxy,
        Some("192.0.2.55, 203.0.113.1"),
        "a@example.org",
        "x",
    )
    .await;
    assert_limited(resp, 30).await;
    // Another client behind the proxy has its own budget.
    let resp = login_from(&app, proxy, Some("203.0.113.2"), "a@example.org", "x").await;
    assert_problem(resp, 401, "unauthorized").await;

    // A peer that is not the proxy is keyed by its own address, whatever it claims.
    let direct = client_from("127.0.0.2");
    for (i, claim) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let resp = login_from(&app, &direct, Some(claim), "a@example.org", "x").await;
        assert_problem(resp, 401, "unauthorized").await;
        assert!(i < 2);
    }
    let resp = login_from(&app, &direct, Some("198.51.100.3"), "a@example.org", "x").await;
    assert_limited(resp, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_limited_per_account_whatever_the_address() {
    let app = spawn_app_with(&[
        ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "3/15m"),
    ])
    .await;
    let victim = app.user(Role::Admin);
    let bystander = app.user(Role::Treasurer);
    // Each guess from a fresh address, as a botnet would.
    for i in 0..3 {
        let ip = format!("203.0.113.{}", 10 + i);
        let resp = login_from(&app, &app.client, Some(&ip), &victim, "guess-guess-guess").await;
        assert_problem(resp, 401, "unauthorized").await;
    }
    // The fourth is refused before the password is looked at, even the right one, and
    // however the email is spelt.
    for spelling in [
        victim.clone(),
        victim.to_uppercase(),
        format!("  {victim} "),
    ] {
        let resp = login_from(
            &app,
            &app.client,
            Some("198.51.100.77"),
            &spelling,
            PASSWORD,
        )
        .await;
        assert_limited(resp, 15 * 60).await;
    }
    // Other accounts log in as usual.
    let resp = login_from(
        &app,
        &app.client,
        Some("198.51.100.78"),
        &bystander,
        PASSWORD,
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_and_wrong_passwords_answer_alike() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_LOGIN", "off"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "off"),
    ])
    .await;
    let known = app.user(Role::Treasurer);
    let mut unknown_times = Vec::new();
    let mut known_times = Vec::new();
    let mut answers = std::collections::BTreeSet::new();
    // Interleaved, so drift in machine load falls on both alike.
    for i in 0..50 {
        for (email, times) in [
            (format!("nobody-{i}@example.org"), &mut unknown_times),
            (known.clone(), &mut known_times),
        ] {
            let t = Instant::now();
            let resp = login_from(&app, &app.client, None, &email, "wrong password, twelve+").await;
            let status = resp.status().as_u16();
            let mut headers: Vec<String> = resp
                .headers()
                .iter()
                // Both differ on every answer by design.
                .filter(|(k, _)| *k != "date" && *k != "x-request-id")
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect();
            headers.sort();
            let body = resp.text().await.expect("body");
            times.push(t.elapsed());
            answers.insert((status, headers, body));
        }
    }
    // Structural: one and the same answer (status, headers, body) for both cases.
    assert_eq!(answers.len(), 1, "answers differ: {answers:#?}");
    assert!(answers.iter().all(|(s, _, _)| *s == 401));
    // Report only (timing asserts flake on shared machines): medians and their ratio.
    unknown_times.sort();
    known_times.sort();
    let (u, k) = (unknown_times[25].as_micros(), known_times[25].as_micros());
    eprintln!(
        "login timing (50 each): unknown email median {u} us, known email with wrong password median {k} us, ratio {}.{:03}",
        u * 1000 / k.max(1) / 1000,
        u * 1000 / k.max(1) % 1000
    );
}

/// Sends `body` with `Transfer-Encoding: chunked` over a raw socket; returns the status line
/// and the rest of the answer.
fn send_chunked(host: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> String {
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n{auth}Connection: close\r\n\r\n"
    );
    // The server may answer and close before the whole body is sent: write errors are fine.
    let _ = s.write_all(head.as_bytes());
    for chunk in body.chunks(4096) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if s.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A JSON object of exactly `size` bytes.
fn json_of_size(size: usize) -> String {
    let pad = size.saturating_sub(r#"{"pad":""}"#.len());
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_route_refuses_bodies_over_its_limit() {
    let app = spawn_app().await;
    let admin = app.token(Role::Admin).await;
    let kib = 1024;
    // (method, path, staff only, limit in bytes)
    let routes: &[(&str, &str, bool, usize)] = &[
        ("POST", "/api/donations", false, 8 * kib),
        ("POST", "/api/auth/login", false, 8 * kib),
        ("POST", "/api/donations/offline", true, 16 * kib),
        ("PUT", "/api/admin/intake", true, 16 * kib),
        ("PUT", "/api/admin/fund", true, 16 * kib),
        ("POST", "/api/admin/periods", true, 16 * kib),
        ("PUT", "/api/admin/periods/1", true, 16 * kib),
        ("POST", "/api/admin/donations/1/refund", true, 16 * kib),
        ("POST", "/webhooks/stripe", false, 512 * kib),
    ];
    for &(method, path, staff, limit) in routes {
        let token = staff.then_some(admin.as_str());
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let send = |body: String| {
            let mut req = app
                .client
                .request(m.clone(), format!("{}{path}", app.addr))
                .header("content-type", "application/json")
                .body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        // At the limit: not refused for size (some other answer about the content).
        let resp = send(json_of_size(limit)).await.expect("request");
        assert_ne!(resp.status(), 413, "{method} {path}: a body at the limit");
        // One byte over, with Content-Length.
        let resp = send(json_of_size(limit + 1)).await.expect("request");
        let problem = assert_problem(resp, 413, "payload_too_large").await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&limit.to_string())),
            "{method} {path}: {problem}"
        );
        // Over, chunked (no length known in advance).
        let (host, body) = (host(&app), json_of_size(limit + 4 * kib));
        let admin = token.map(str::to_owned);
        let answer = tokio::task::spawn_blocking(move || {
            send_chunked(&host, method, path, admin.as_deref(), body.as_bytes())
        })
        .await
        .expect("chunked request");
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{method} {path} chunked: {}",
            &answer[..answer.len().min(200)]
        );
        assert!(
            answer.contains("application/problem+json"),
            "{method} {path}"
        );
        assert!(
            answer.contains(r#""code":"payload_too_large""#),
            "{method} {path}"
        );
    }
    assert_eq!(app.count("donations"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let app = spawn_app_with(&[("HTTP_HEADER_TIMEOUT", "1s"), ("REQUEST_TIMEOUT", "1s")]).await;
    let h = host(&app);

    // Slowloris: the head trickles in, one header line every 300 ms for 10 s.
    let target = h.clone();
    let (closed_after, answer) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&target).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let started = Instant::now();
        let _ = s.write_all(format!("GET /api/fund HTTP/1.1\r\nHost: {target}\r\n").as_bytes());
        let mut answer = Vec::new();
        let mut buf = [0_u8; 1024];
        while started.elapsed() < Duration::from_secs(10) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            if s.write_all(b"X-Slow: still-coming\r\n").is_err() {
                break;
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
    .await
    .expect("slow client");
    eprintln!("slow head cut off after {} ms", closed_after.as_millis());
    assert!(
        closed_after < Duration::from_secs(6),
        "the slow head was cut off after {closed_after:?}, not left to trickle"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "answer: {answer}"
    );

    // A body that trickles is stopped at the request deadline with 503 `timeout`.
    let target = h.clone();
    let (took, answer) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&target).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let started = Instant::now();
        let head = format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             Content-Length: 200\r\nConnection: close\r\n\r\n{{\"email\":"
        );
        let _ = s.write_all(head.as_bytes());
        let mut answer = Vec::new();
        let mut buf = [0_u8; 1024];
        while started.elapsed() < Duration::from_secs(10) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
            let _ = s.write_all(b" ");
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
    .await
    .expect("slow body");
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "answer: {answer}");
    assert!(answer.contains(r#""code":"timeout""#), "answer: {answer}");
    // The request log's id is on an answer made from an error too.
    assert!(
        answer.to_lowercase().contains("\r\nx-request-id: "),
        "answer: {answer}"
    );

    // The service is still there for everyone else.
    assert_eq!(app.fund().await["raised"], "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_export_outlives_the_request_deadline() {
    let app = spawn_app_with(&[("REQUEST_TIMEOUT", "1s")]).await;
    let token = app.token(Role::Treasurer).await;
    for i in 0..40 {
        let resp = app
            .post_offline(&token, &gift("5.00"), Some(&format!("deadline-{i}")))
            .await;
        assert_eq!(resp.status(), 201);
    }
    let mut resp = app
        .send(
            reqwest::Method::GET,
            "/api/reports/donations.csv",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut csv = Vec::new();
    let first = resp.chunk().await.expect("first chunk").expect("some data");
    csv.extend_from_slice(&first);
    // A slow reader: the rest is read well after the deadline has passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        csv.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(csv).expect("utf-8");
    assert_eq!(text.lines().count(), 41, "header and every gift");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_endpoints_cap_their_pages() {
    let app = spawn_app().await;
    let token = app.token(Role::Treasurer).await;
    for path in ["/api/donations", "/api/reports/payouts"] {
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999", "100000"] {
            let resp = app
                .send(
                    reqwest::Method::GET,
                    &format!("{path}?limit={bad}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_problem(resp, 422, "invalid_request").await;
        }
    }
    let over = |path: &str, max: i64| format!("{path}?limit={}", max + 1);
    for (path, max) in [("/api/donations", 200), ("/api/reports/payouts", 500)] {
        let resp = app
            .send(reqwest::Method::GET, &over(path, max), Some(&token), None)
            .await;
        let problem = assert_problem(resp, 422, "invalid_request").await;
        assert_eq!(problem["field"], "limit");
        let resp = app
            .send(
                reqwest::Method::GET,
                &format!("{path}?limit={max}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(resp.status(), 200, "{path} at the cap");
    }

    // Payouts page newest first, and the cursor walks them all once.
    {
        use diesel::prelude::*;
        let mut conn = app.conn();
        for (id, created) in [("po_a", 100), ("po_b", 200), ("po_c", 200), ("po_d", 300)] {
            diesel::sql_query(format!(
                "INSERT INTO payouts (id, amount_minor, currency, status, arrival_date, created, \
                 updated_at, reconciled_at, matched, missing_in_ledger, missing_in_stripe, \
                 differences, report) VALUES ('{id}', 100, 'usd', 'paid', NULL, {created}, \
                 '2024-01-01 00:00:00', NULL, 0, 0, 0, 0, '{{}}')"
            ))
            .execute(&mut conn)
            .expect("payout row");
        }
    }
    let mut seen = Vec::new();
    let mut path = "/api/reports/payouts?limit=3".to_owned();
    loop {
        let page: Value = app.get_json(&path, &token).await;
        let ids: Vec<String> = page["payouts"]
            .as_array()
            .expect("payouts")
            .iter()
            .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(ids.len() <= 3);
        seen.extend(ids);
        match page["next_before"].as_str() {
            Some(next) => path = format!("/api/reports/payouts?limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["po_d", "po_c", "po_b", "po_a"]);
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/reports/payouts?before=po_nope",
            Some(&token),
            None,
        )
        .await;
    // A cursor naming no payout is a reference to something missing (schemathesis holds a
    // schema-valid cursor to 404, not 422).
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_client_is_throttled_while_another_still_gives() {
    // The default limits, as a fund would run them.
    let app = std::sync::Arc::new(crate::helpers::spawn_app_with_stripe(&[]).await);
    let defaults =
        crowdledger::config::LimitsConfig::from_lookup(&|_: &str| None).expect("defaults");
    let rate = defaults
        .donations
        .expect("donations are limited by default");

    // A human donor (127.0.0.1) gives three times while the burst runs.
    let human = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let resp = app.donate("5.00").await;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or_default();
                outcomes.push((status, body));
            }
            outcomes
        })
    };

    // A script (127.0.0.2) sends 300 donations in about a second, open loop.
    let burster = client_from("127.0.0.2");
    let url = format!("{}/api/donations", app.addr);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300_u64 {
        tokio::time::sleep_until(started + Duration::from_micros(i * 3_333)).await;
        let (client, url) = (burster.clone(), url.clone());
        tasks.spawn(async move {
            let resp = client
                .post(url)
                .json(
                    &json!({ "amount": "5.00", "donor_name": "Script", "email": "s@example.org" }),
                )
                .send()
                .await
                .expect("burst request");
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = resp.json().await.unwrap_or_default();
            (
                status,
                retry_after,
                body["code"].as_str().map(str::to_owned),
            )
        });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = tasks.join_next().await {
        outcomes.push(r.expect("task"));
    }
    let elapsed = started.elapsed();
    let created = outcomes.iter().filter(|o| o.0 == 201).count();
    let limited: Vec<_> = outcomes.iter().filter(|o| o.0 == 429).collect();
    assert_eq!(
        created + limited.len(),
        300,
        "only 201 or 429: {outcomes:?}"
    );
    // At most the burst plus what refilled while it ran.
    let refilled = elapsed.as_millis() * u128::from(rate.burst) / rate.period.as_millis().max(1);
    let allowed = usize::try_from(u128::from(rate.burst) + refilled + 1).unwrap_or(usize::MAX);
    assert!(
        created <= allowed,
        "{created} created, at most {allowed} allowed"
    );
    assert!(limited.len() >= 300 - allowed, "mostly refused");
    for (_, retry_after, code) in &limited {
        assert_eq!(code.as_deref(), Some("rate_limited"));
        assert!(
            retry_after.is_some_and(|s| s >= 1),
            "Retry-After on every 429"
        );
    }

    // The human was never refused, and the gift really goes through.
    let human = human.await.expect("human donor");
    assert!(human.iter().all(|(s, _)| *s == 201), "{human:?}");
    let pi = human[0].1["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("intent")
        .to_owned();
    assert_eq!(
        app.stripe.as_ref().expect("stripe").confirm(&pi).await,
        "succeeded"
    );
    let fund = app.wait_for_fund(|f| f["raised"] == "5.00").await;
    assert_eq!(fund["raised"], "5.00");
}
