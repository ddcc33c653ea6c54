//! `GET /metrics` (issue 22): never public by default, opened by `METRICS_TOKEN` on the main
//! port or served on the private `METRICS_ADDR` listener; the text parses as Prometheus'
//! format and its series hold what the service did.

use std::collections::BTreeMap;

use crowdledger::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with, spawn_app_with_stripe};
use crate::localstripe::event;

pub(crate) const TOKEN: &str = "metrics-token-0123456789";

/// One sample: name, labels, value.
pub(crate) type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format: every line is a `#` comment or `name{k="v",...} value`; panics
/// on anything else.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("the value is a number");
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label is k=v");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("label value is quoted");
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "metric name {name:?} in {line:?}"
        );
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

/// The value of the series `name` with exactly `labels`, if present.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

pub(crate) async fn get(app: &TestApp, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("metrics request")
}

#[tokio::test]
async fn metrics_are_not_served_by_default() {
    let app = spawn_app().await;
    let resp = get(&app, &format!("{}/metrics", app.addr), None).await;
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn metrics_need_the_token_on_the_main_port() {
    let app = spawn_app_with(&[("METRICS_TOKEN", TOKEN)]).await;
    let url = format!("{}/metrics", app.addr);
    assert_problem(get(&app, &url, None).await, 401, "unauthorized").await;
    assert_problem(
        get(&app, &url, Some("not-the-token-at-all")).await,
        403,
        "forbidden",
    )
    .await;
    let resp = get(&app, &url, Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let samples = parse(&resp.text().await.expect("body"));
    assert!(value(&samples, "crowdledger_fund_raised_minor", &[]).is_some());
}

#[tokio::test]
async fn metrics_are_served_on_metrics_addr_only() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let app = spawn_app_with(&[("METRICS_ADDR", &addr)]).await;
    // The donation port still answers 404 without a token.
    let main = get(&app, &format!("{}/metrics", app.addr), None).await;
    assert_problem(main, 404, "not_found").await;
    let resp = get(&app, &format!("http://{addr}/metrics"), None).await;
    assert_eq!(resp.status(), 200);
    let samples = parse(&resp.text().await.expect("body"));
    assert_eq!(
        value(&samples, "crowdledger_intake_state", &[("state", "open")]),
        Some(1.0)
    );
    // Nothing but /metrics there.
    let other = get(&app, &format!("http://{addr}/api/fund"), None).await;
    assert_problem(other, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_what_the_service_did() {
    let app =
        spawn_app_with_stripe(&[("METRICS_TOKEN", TOKEN), ("RATE_LIMIT_DONATIONS", "1/min")]).await;
    let treasurer = app.token(Role::Treasurer).await;
    let mut gift = crate::helpers::gift("25.00");
    gift["email"] = json!("ann@example.org");
    assert_eq!(
        app.post_offline(&treasurer, &gift, None).await.status(),
        201
    );
    // A success for a payment not known here (kept) and a type the ledger ignores.
    let now = chrono::Utc::now().timestamp();
    let kept = event(
        "evt_metrics_1",
        "payment_intent.succeeded",
        json!({
            "id": "pi_metrics_unknown", "object": "payment_intent", "amount": 1000,
            "amount_received": 1000, "currency": "usd", "status": "succeeded",
            "latest_charge": "ch_metrics_1", "metadata": {},
        }),
    );
    assert_eq!(app.deliver(&kept, now).await.status(), 200);
    let ignored = event(
        "evt_metrics_2",
        "customer.created",
        json!({ "id": "cus_1" }),
    );
    assert_eq!(app.deliver(&ignored, now).await.status(), 200);
    // One donation attempt is allowed, the second refused.
    let _ = app.donate("10.00").await;
    assert_problem(app.donate("10.00").await, 429, "rate_limited").await;
    for _ in 0..3 {
        app.fund().await;
    }
    let fund = app.fund().await;
    let minor = |v: &serde_json::Value| {
        let d: rust_decimal::Decimal = v.as_str().expect("amount").parse().expect("decimal");
        (d * rust_decimal::Decimal::from(100))
            .to_string()
            .parse::<f64>()
            .expect("f64")
    };
    let resp = get(&app, &format!("{}/metrics", app.addr), Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    let s = parse(&resp.text().await.expect("body"));
    assert_eq!(minor(&fund["raised"]), 2500.0);
    assert_eq!(
        value(&s, "crowdledger_fund_raised_minor", &[]),
        Some(2500.0)
    );
    assert_eq!(
        value(&s, "crowdledger_fund_target_minor", &[]),
        Some(minor(&fund["target"]))
    );
    assert_eq!(
        value(&s, "crowdledger_intake_state", &[("state", "open")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "crowdledger_intake_state", &[("state", "closed")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "crowdledger_outbox_messages", &[("state", "queued")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "crowdledger_outbox_messages", &[("state", "failed")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_webhook_events_total",
            &[("type", "payment_intent.succeeded"), ("outcome", "kept")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_webhook_events_total",
            &[("type", "other"), ("outcome", "ignored")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_rate_limited_total",
            &[("limit", "donation")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/donations"),
                ("status", "429")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_http_requests_total",
            &[("method", "GET"), ("route", "/api/fund"), ("status", "200")]
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            "crowdledger_http_request_duration_seconds_count",
            &[("route", "/api/fund")]
        ),
        Some(4.0)
    );
    // The gift, the two events and the donation each went through a committed batch.
    let batches = value(&s, "crowdledger_writer_batch_size_count", &[]).expect("batches");
    let commands = value(&s, "crowdledger_writer_batch_size_sum", &[]).expect("commands");
    assert!(
        batches >= 1.0 && commands >= 4.0,
        "{batches} batches, {commands} commands"
    );
    assert_eq!(
        value(&s, "crowdledger_writer_commit_seconds_count", &[]),
        Some(batches)
    );
}
