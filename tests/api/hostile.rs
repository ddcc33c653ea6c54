//! Hostile content: markup in every text field never becomes markup on the pages, in the SVG
//! charts or in the emails; SQL-looking text and query parameters are inert; donor emails never
//! reach the log above debug level. (The same payloads run in Chromium in tests/browser/run.mjs.)

use std::io::Write;
use std::process::{Command, Stdio};

use crowdledger::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    JWT_SECRET, PASSWORD, TestApp, assert_problem, fresh_database, spawn_app_with, url_text,
};
use crate::localstripe::LocalStripe;
use crate::smtp::SmtpSink;

const SCRIPT: &str = "<script>window.__pwned=1</script>";
const IMG: &str = "\"><img src=x onerror=window.__pwned=1>";
const SVG: &str = "</title><svg onload=window.__pwned=1>";
const JS_URL: &str = "javascript:window.__pwned=1";
const ATTR: &str = "' onmouseover='window.__pwned=1";

/// Markup that must never appear raw in HTML or SVG built from stored text.
const RAW: [&str; 5] = [
    "<script>window",
    "<img src=x",
    "<svg onload",
    "\"><img",
    "' onmouseover='",
];

/// What the payloads look like once escaped (minijinja and the SVG escaper agree on these).
const ESCAPED: [&str; 3] = [
    "&lt;script&gt;window.__pwned=1&lt;",
    "&lt;img src=x onerror=window.__pwned=1&gt;",
    "&lt;svg onload=window.__pwned=1&gt;",
];

fn assert_inert(what: &str, markup: &str) {
    for raw in RAW {
        assert!(!markup.contains(raw), "{what} contains raw {raw:?}");
    }
}

async fn text(app: &TestApp, path: &str, token: Option<&str>) -> String {
    let resp = app.send(Method::GET, path, token, None).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_every_text_field_is_escaped_on_pages_charts_and_emails() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[
        ("SMTP_URL", &url),
        ("MAIL_RETRY_BASE", "200ms"),
        ("FUND_TARGET", "100.00"),
    ])
    .await;
    let admin = app.token(Role::Admin).await;
    let fund_name = format!("{SVG} {SCRIPT}");
    let resp = app.put_fund(&admin, &json!({ "name": fund_name })).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.add_period(&admin, IMG, "2020-08-01", "2020-08-31", "50.00")
            .await
            .status(),
        201
    );
    let donor = format!("{SCRIPT}{IMG}");
    let gift = json!({
        "amount": "25.00", "donor_name": donor, "email": "hostile@example.org",
        "method": "check", "reference": JS_URL, "locale": "en",
    });
    let resp = app.post_offline(&admin, &gift, None).await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.expect("json")["donation_id"]
        .as_i64()
        .expect("id");
    let resp = app
        .send(
            Method::POST,
            &format!("/api/admin/donations/{id}/refund"),
            Some(&admin),
            Some(&json!({ "amount": "5.00", "reason": SVG })),
        )
        .await;
    assert_eq!(resp.status(), 200);

    // The donor page while intake is open: the fund name in <title>, <h1>, data-fund-name.
    let open = text(&app, "/?lang=en", None).await;
    assert_inert("the open donor page", &open);
    assert!(
        open.contains("&lt;&#x2f;title&gt;&lt;svg onload=window.__pwned=1&gt;"),
        "fund name escaped"
    );
    assert!(open.contains("data-fund-name=\"&lt;&#x2f;title&gt;"));
    assert!(open.contains(ESCAPED[2]) && open.contains(ESCAPED[0]));
    assert!(open.contains(ESCAPED[1]), "period label escaped");

    // Paused with a hostile message: shown instead of the form, in both languages.
    let message = format!("{SCRIPT} {JS_URL} {ATTR}");
    assert_eq!(app.put_intake(&admin, false, &message).await.status(), 200);
    for lang in ["en", "zh-CN"] {
        let paused = text(&app, &format!("/?lang={lang}"), None).await;
        assert_inert("the paused donor page", &paused);
        assert!(paused.contains("&#x27; onmouseover=&#x27;window.__pwned=1"));
        assert!(paused.contains(ESCAPED[0]));
        assert!(
            !paused.contains("href=\"javascript"),
            "no link made of text"
        );
    }
    let admin_page = text(&app, "/admin", None).await;
    assert_inert("the admin page", &admin_page);

    // The SVG charts carry the period label as escaped text.
    let svg = text(&app, "/api/admin/charts/periods.svg", Some(&admin)).await;
    assert_inert("the periods chart", &svg);
    assert!(
        svg.contains("&lt;img src=x onerror=window.__pwned=1&gt;"),
        "{svg}"
    );

    // Reaching the target sends intake_closed to the staff: fund name and period label in it.
    assert_eq!(app.put_intake(&admin, true, "").await.status(), 200);
    let resp = app.put_fund(&admin, &json!({ "target": "10.00" })).await;
    assert_eq!(resp.status(), 200);
    let messages = sink.wait_for(3, 20).await;
    let kinds: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m["to"][0].as_str().unwrap_or_default().to_owned(),
                m["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        messages.len() >= 3,
        "receipt, refund, intake_closed: {kinds:?}"
    );
    for m in &messages {
        let to: Vec<&str> = m["to"]
            .as_array()
            .expect("to")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            to == ["hostile@example.org"]
                || (to.len() == 1
                    && to[0].starts_with("admin-")
                    && to[0].ends_with("@example.org")),
            "recipients {to:?}"
        );
        let subject = m["subject"].as_str().unwrap_or_default();
        assert!(!subject.contains('\n'), "one-line subject");
        let html = m["html"].as_str().expect("html part");
        assert_inert("an email's HTML part", html);
        assert!(
            ESCAPED.iter().any(|e| html.contains(e)),
            "the payload reached the email escaped: {subject}"
        );
        // The plain-text part shows the text as typed: it is never rendered as HTML.
        let plain = m["text"].as_str().expect("text part");
        assert!(
            plain.contains(SCRIPT),
            "text part keeps the text: {subject}"
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m["html"].as_str().unwrap_or_default().contains(ESCAPED[1])),
        "a period label reached intake_closed escaped"
    );
}

const SQLISH: [&str; 10] = [
    "'); DROP TABLE donations;--",
    "' OR '1'='1",
    "Robert'); DROP TABLE students;--",
    "1; DELETE FROM ledger_entries WHERE 1=1",
    "\" OR \"\"=\"",
    "%' OR 1=1 --",
    "admin'--",
    "' UNION SELECT email, password_hash FROM users --",
    "\\'; SELECT pg_sleep(5); --",
    "x') ON CONFLICT DO NOTHING; --",
];

/// Unicode that trips naive code: right-to-left override, combining marks, ZWJ sequences,
/// BOM, zero-width, astral, full-width, CJK and Arabic (no NUL, no control characters).
const ODD: [&str; 10] = [
    "Zoë \u{202E}gnp.exe",
    "e\u{301}\u{301}\u{301}",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦",
    "مرحبا بالعالم",
    "\u{FEFF}bom",
    "Ｆｕｌｌ ｗｉｄｔｈ",
    "𝕏𝔂𝔃 𝟙𝟚𝟛",
    "zero\u{200B}width\u{200C}join",
    "陳美玲 / 한국어",
    "line one\nline two",
];

/// Rows of each table that requests could write; audit rows of failed logins aside (every
/// refused login is recorded, by design: issue 23's audit trail).
fn table_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    use crowdledger::db::schema::audit_log;
    use diesel::prelude::*;
    let mut counts: Vec<(&'static str, i64)> =
        ["donations", "ledger_entries", "periods", "users", "outbox"]
            .into_iter()
            .map(|t| (t, app.count(t)))
            .collect();
    let audits: i64 = audit_log::table
        .filter(audit_log::action.ne("auth.login_failed"))
        .count()
        .get_result(&mut app.conn())
        .expect("audit rows");
    counts.push(("audit_log", audits));
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_looking_and_odd_unicode_text_is_stored_and_returned_byte_for_byte() {
    // Every hostile text is also tried as a login: more than one address's login allowance.
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN", "off")]).await;
    let admin = app.token(Role::Admin).await;
    let texts: Vec<&str> = SQLISH.iter().chain(ODD.iter()).copied().collect();
    for (i, t) in texts.iter().enumerate() {
        let gift = json!({
            "amount": format!("{}.00", i + 1), "donor_name": t, "method": "wire", "reference": t,
        });
        let resp = app.post_offline(&admin, &gift, None).await;
        assert_eq!(resp.status(), 201, "{t:?}");
        let label = format!("P{i} {t}");
        let resp = app
            .add_period(&admin, &label, "2020-08-01", "2020-08-31", "1.00")
            .await;
        assert_eq!(resp.status(), 201, "{t:?}");
    }
    let list = app.get_json("/api/donations?limit=200", &admin).await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), texts.len());
    for (item, t) in items.iter().zip(&texts) {
        assert_eq!(item["donor_name"], *t, "donor_name byte for byte");
        assert_eq!(item["reference"], *t, "reference byte for byte");
    }
    let fund = app.fund().await;
    let labels: Vec<&str> = fund["periods"]
        .as_array()
        .expect("periods")
        .iter()
        .filter_map(|p| p["label"].as_str())
        .collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(labels.contains(&format!("P{i} {t}").as_str()), "{t:?}");
    }
    for t in texts.iter().take(3) {
        let resp = app.put_fund(&admin, &json!({ "name": t })).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(app.fund().await["name"], *t);
        assert_eq!(app.put_intake(&admin, false, t).await.status(), 200);
        assert_eq!(app.fund().await["intake"]["message"], *t);
        assert_eq!(app.put_intake(&admin, true, "").await.status(), 200);
    }

    // Structured parameters refuse SQL-looking values; nothing is written or lost.
    let before = table_counts(&app);
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    for t in SQLISH {
        let e = enc(t);
        for q in ["status", "method", "after", "before", "order", "limit"] {
            let resp = app
                .send(
                    Method::GET,
                    &format!("/api/donations?{q}={e}"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_problem(resp, 422, "invalid_request").await;
        }
        for q in ["from", "to", "status", "method", "period"] {
            for report in ["donations.csv", "ledger.csv", "summary"] {
                let resp = app
                    .send(
                        Method::GET,
                        &format!("/api/reports/{report}?{q}={e}"),
                        Some(&admin),
                        None,
                    )
                    .await;
                assert_problem(resp, 422, "invalid_request").await;
            }
        }
        let resp = app
            .send(
                Method::GET,
                &format!("/api/donations/1{e}/status?token={e}"),
                None,
                None,
            )
            .await;
        assert_problem(resp, 404, "not_found").await;
        let resp = app
            .send(
                Method::POST,
                &format!("/api/admin/donations/{e}/refund"),
                Some(&admin),
                Some(&json!({ "reason": t })),
            )
            .await;
        assert_problem(resp, 404, "not_found").await;
        let resp = app
            .send(
                Method::POST,
                "/api/auth/login",
                None,
                Some(&json!({ "email": t, "password": t })),
            )
            .await;
        assert_problem(resp, 401, "unauthorized").await;
        // An amount is structured too.
        let resp = app
            .post_offline(
                &admin,
                &json!({ "amount": t, "donor_name": "A", "method": "cash" }),
                None,
            )
            .await;
        assert_problem(resp, 422, "invalid_amount").await;
    }
    // A filter with a real value still works after all that.
    let wires = app
        .get_json(
            "/api/donations?method=wire&status=succeeded&limit=200",
            &admin,
        )
        .await;
    assert_eq!(wires["items"].as_array().map(Vec::len), Some(texts.len()));
    // Only refused requests ran since: every table is as it was.
    assert_eq!(table_counts(&app), before, "tables intact, nothing written");
    assert!(app.verify().is_ok(), "the ledger verifies");
}

/// A distinctive donor address for the log test.
fn canary(tag: &str) -> String {
    format!("canary-{tag}@donor-secret.example")
}

/// A distinctive donor name for the log test.
fn canary_name(tag: &str) -> String {
    format!("Secretdonorname {tag}")
}

/// The donor data that must never reach the log at the default level.
const DONOR_NEEDLES: [&str; 3] = ["canary-", "donor-secret.example", "secretdonorname"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donor_emails_never_reach_the_log_above_debug() {
    let (log, refund_path) = donor_log_scenario("text").await;
    assert!(
        log.contains("crowdledger listening"),
        "the log was captured:\n{log}"
    );
    assert!(
        log.contains("email not sent; will retry"),
        "the refused recipient was logged as a failure:\n{log}"
    );
    assert!(
        log.contains("route=/api/donations/offline status=201"),
        "requests are logged with their route and status:\n{log}"
    );
    assert!(!log.contains(&refund_path), "no raw path:\n{log}");
    assert_no_donor_data(&log);
}

/// `LOG_FORMAT=json`: the same traffic gives one JSON object per line, request lines carry
/// the request id, the route pattern (never the raw path), the status and the latency, and
/// still no donor address or name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donor_emails_never_reach_the_json_log_above_debug() {
    let (log, refund_path) = donor_log_scenario("json").await;
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "crowdledger listening" && l["level"] == "INFO"),
        "the log was captured:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "email not sent; will retry"),
        "the refused recipient was logged as a failure:\n{log}"
    );
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    for r in &requests {
        assert!(r["request_id"].is_string(), "request id: {r}");
        assert!(r["route"].is_string(), "route: {r}");
        assert!(r["status"].is_u64(), "status: {r}");
        assert!(r["latency_ms"].is_u64(), "latency: {r}");
    }
    let has = |method: &str, route: &str, status: u64| {
        requests
            .iter()
            .any(|r| r["method"] == method && r["route"] == route && r["status"] == status)
    };
    assert!(has("POST", "/api/donations/offline", 201), "{log}");
    assert!(has("POST", "/api/donations/offline", 422), "{log}");
    assert!(has("POST", "/api/auth/login", 401), "{log}");
    assert!(has("POST", "/webhooks/stripe", 200), "{log}");
    assert!(
        has("POST", "/api/admin/donations/{id}/refund", 200),
        "the route pattern, not the path:\n{log}"
    );
    assert!(has("GET", "unmatched", 404), "{log}");
    assert!(
        requests
            .iter()
            .any(|r| r["request_id"] == "ops-trace-7f3a" && r["route"] == "/api/fund"),
        "a plain client request id is kept:\n{log}"
    );
    assert!(
        !log.contains(&refund_path) && !log.contains("no-such-page") && !log.contains("utm_source"),
        "no raw path or query string in the log:\n{log}"
    );
    assert_no_donor_data(&log);
}

fn assert_no_donor_data(log: &str) {
    let lower = log.to_lowercase();
    for needle in DONOR_NEEDLES {
        assert!(
            !lower.contains(needle),
            "donor data ({needle}) reached the log at info:\n{log}"
        );
    }
}

/// Runs the real binary with `LOG_FORMAT=format` through receipts, a refused recipient, bad
/// input, a card gift with its webhook, a failed login and a refund; returns its stdout and
/// stderr, and the raw path of the refund (which must not be logged).
async fn donor_log_scenario(format: &str) -> (String, String) {
    let stripe = LocalStripe::start().await;
    let sink = SmtpSink::start().await;
    let (db, _dir) = fresh_database();
    let db = url_text(&db);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let bin = env!("CARGO_BIN_EXE_crowdledger");
    let logs = tempfile::tempdir().expect("dir");
    let admin = "log-admin@example.org";
    let mut add = Command::new(bin)
        .args(["user", "add", "--email", admin, "--role", "admin"])
        .env("DATABASE_URL", &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(PASSWORD.as_bytes())
        .expect("password");
    assert!(add.wait().expect("user add ends").success());

    let out = std::fs::File::create(logs.path().join("out")).expect("log file");
    let err = std::fs::File::create(logs.path().join("err")).expect("log file");
    let addr = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(bin)
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", format)
        // This admin signs in with a password alone (the second factor has its own tests).
        .env("REQUIRE_2FA", "off")
        .env("SMTP_URL", sink.url())
        .env("MAIL_RETRY_BASE", "200ms")
        .env("STRIPE_SECRET_KEY", crate::localstripe::SECRET_KEY)
        .env("STRIPE_PUBLISHABLE_KEY", "pk_test_crowdledger")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_logtest")
        .env("STRIPE_API_BASE", &stripe.base)
        .env(
            "STRIPE_JS_URL",
            format!("{}/js.stripe.com/v3/", stripe.base),
        )
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("serve");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{addr}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the server started");
    stripe
        .register_webhook(&format!("{addr}/webhooks/stripe"), "whsec_logtest")
        .await;
    let post = |path: &str, token: Option<&str>, body: Value, key: Option<&str>| {
        let mut req = client.post(format!("{addr}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };
    let login: Value = post(
        "/api/auth/login",
        None,
        json!({ "email": admin, "password": PASSWORD }),
        None,
    )
    .await
    .expect("login")
    .json()
    .await
    .expect("json");
    let token = login["access_token"].as_str().expect("token").to_owned();
    let t = Some(token.as_str());
    let offline = |email: &str, amount: &str| json!({ "amount": amount, "donor_name": canary_name("offline"), "email": email, "method": "check" });

    // A receipt sent, one the mail server refuses (naming the address), a bad address,
    // an idempotency conflict, a card gift with its webhook, a bad card gift, a failed
    // login with a donor's address, a refund notice.
    let ok = post(
        "/api/donations/offline",
        t,
        offline(&canary("ok"), "10.00"),
        None,
    )
    .await
    .expect("offline");
    assert_eq!(ok.status(), 201);
    let ok_id = ok.json::<Value>().await.expect("json")["donation_id"]
        .as_i64()
        .expect("id");
    let refused = canary("refused+reject");
    let resp = post(
        "/api/donations/offline",
        t,
        offline(&refused, "11.00"),
        None,
    )
    .await
    .expect("offline");
    assert_eq!(resp.status(), 201);
    let resp = post(
        "/api/donations/offline",
        t,
        offline(&format!("canary-bad@@{}", "donor-secret.example"), "12.00"),
        None,
    )
    .await
    .expect("offline");
    assert_eq!(resp.status(), 422);
    for amount in ["13.00", "14.00"] {
        let resp = post(
            "/api/donations/offline",
            t,
            offline(&canary("idem"), amount),
            Some("log-test-key"),
        )
        .await
        .expect("offline");
        assert!(matches!(resp.status().as_u16(), 201 | 409));
    }
    let card: Value = post(
        "/api/donations",
        None,
        json!({ "amount": "20.00", "donor_name": canary_name("card"), "email": canary("card") }),
        None,
    )
    .await
    .expect("donate")
    .json()
    .await
    .expect("json");
    let pi = card["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("intent")
        .to_owned();
    assert_eq!(stripe.confirm(&pi).await, "succeeded");
    let resp = post(
        "/api/donations",
        None,
        json!({ "amount": "0.001", "donor_name": canary_name("bad"), "email": canary("badamount") }),
        None,
    )
    .await
    .expect("donate");
    assert_eq!(resp.status(), 422);
    let resp = post(
        "/api/auth/login",
        None,
        json!({ "email": canary("login"), "password": "wrong" }),
        None,
    )
    .await
    .expect("login");
    assert_eq!(resp.status(), 401);
    let resp = post(
        &format!("/api/admin/donations/{ok_id}/refund"),
        t,
        json!({ "reason": "log test" }),
        None,
    )
    .await
    .expect("refund");
    assert_eq!(resp.status(), 200);

    // Receipts (offline, idempotent, card) and the refund notice arrive; the refused one is
    // retried meanwhile.
    let msgs = sink.wait_for(4, 20).await;
    assert!(msgs.len() >= 4, "{} messages", msgs.len());

    // The request id: a plain one from the client is kept and echoed, anything else replaced.
    let traced = client
        .get(format!("{addr}/api/fund"))
        .header("X-Request-Id", "ops-trace-7f3a")
        .send()
        .await
        .expect("fund");
    assert_eq!(traced.headers()["x-request-id"], "ops-trace-7f3a");
    let hostile_id = canary("id");
    let replaced = client
        .get(format!("{addr}/no-such-page?utm_source=x"))
        .header("X-Request-Id", &hostile_id)
        .send()
        .await
        .expect("404");
    assert_eq!(replaced.status(), 404);
    let new_id = replaced.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        new_id.len() == 32 && new_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a generated id: {new_id}"
    );
    let long = "a".repeat(65);
    let resp = client
        .get(format!("{addr}/healthz"))
        .header("X-Request-Id", &long)
        .send()
        .await
        .expect("healthz");
    assert_ne!(resp.headers()["x-request-id"], long.as_str());

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let _ = server.kill();
    let _ = server.wait();
    let log = format!(
        "{}{}",
        std::fs::read_to_string(logs.path().join("out")).unwrap_or_default(),
        std::fs::read_to_string(logs.path().join("err")).unwrap_or_default()
    );
    (log, format!("/api/admin/donations/{ok_id}/refund"))
}

/// Guessing second-factor codes is throttled like guessing passwords: per account (and per
/// address), with the default limits; once throttled, even the right code waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_guessing_is_throttled() {
    let app = crate::helpers::spawn_app().await;
    let email = app.user(Role::Admin);
    let _enrolled = crate::helpers::login(&app, &email).await;
    let step = crate::helpers::login_answer(&app, &email, crate::helpers::PASSWORD).await;
    let mut throttled_at = None;
    for attempt in 1..=20 {
        let resp = app
            .send(
                Method::POST,
                "/api/auth/mfa",
                None,
                Some(&json!({ "mfa_token": step["mfa_token"], "code": format!("{:06}", attempt * 7919) })),
            )
            .await;
        match resp.status().as_u16() {
            401 => continue,
            429 => {
                throttled_at = Some(attempt);
                break;
            }
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    let at = throttled_at.expect("guessing is throttled");
    assert!(at <= 10, "throttled only at attempt {at}");
    let secret = app.enrolled.lock().expect("enrolled")[&email]
        .secret
        .clone();
    let right = crate::helpers::totp_now(&secret);
    let resp = app
        .send(
            Method::POST,
            "/api/auth/mfa",
            None,
            Some(&json!({ "mfa_token": step["mfa_token"], "code": right })),
        )
        .await;
    assert_eq!(resp.status(), 429, "the right code waits too");
    assert!(resp.headers().contains_key("retry-after"));
}
