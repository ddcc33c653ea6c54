//! Defects found in review (issue 18): the stored currency wins over `FUND_CURRENCY`, `verify`
//! on a live fund, and the strict cap when the target moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, gift, spawn_app, spawn_app_with_stripe};

/// The review's scenario: a fund created in USD, then served with `FUND_CURRENCY=JPY` and
/// matching `FUND_TARGET`/`DONATION_MIN`. Every amount is read in dollars, the fund's currency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fund_keeps_its_stored_currency_when_served_with_another() {
    let app = spawn_app_with_stripe(&[]).await;
    assert_eq!(app.fund().await["currency"], "USD");
    let app = app
        .restart_with(&[
            ("FUND_CURRENCY", "JPY"),
            ("FUND_TARGET", "150000000"),
            ("DONATION_MIN", "100"),
            ("DONATION_MAX", "10000000"),
        ])
        .await;
    assert_eq!(app.fund().await["currency"], "USD");

    let resp = app.donate("5000").await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["amount"], "5000.00");
    let pi = body["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("intent id")
        .to_owned();
    let ls = app.stripe.as_ref().expect("localstripe");
    let intent = ls.intent(&pi).await;
    assert_eq!(intent["currency"], "usd", "charged in the fund's currency");
    assert_eq!(intent["amount"], 500_000);

    assert_eq!(ls.confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] != "0.00").await;
    assert_eq!(
        fund["raised"], "5000.00",
        "raised moved by what Stripe charged"
    );
    assert_eq!(fund["donation_count"], 1);

    // The target, the donation bounds and offline gifts are read in dollars too.
    let admin = app.token(Role::Admin).await;
    let resp = app.put_fund(&admin, &json!({ "target": "500000" })).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.fund().await["target"], "500000.00");
    assert_problem(app.donate("50").await, 422, "invalid_amount").await;
    let treasurer = app.token(Role::Treasurer).await;
    assert_eq!(
        app.post_offline(&treasurer, &gift("12.34"), None)
            .await
            .status(),
        201
    );
    assert_eq!(app.fund().await["raised"], "5012.34");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// `crowdledger verify`, as cron runs it, while gifts keep arriving: every run passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_twenty_times_during_a_burst_of_gifts() {
    let app = Arc::new(spawn_app().await);
    let token = app.token(Role::Treasurer).await;
    let stop = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicU64::new(0));
    let mut posters = Vec::new();
    for _ in 0..4 {
        let (app, token, stop, posted) = (
            Arc::clone(&app),
            token.clone(),
            Arc::clone(&stop),
            Arc::clone(&posted),
        );
        posters.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = app.post_offline(&token, &gift("1.00"), None).await.status();
                assert_eq!(status, 201);
                posted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The burst is under way before the first run, and goes on through all of them.
    while posted.load(Ordering::Relaxed) < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = posted.load(Ordering::Relaxed);
    let mut failures = Vec::new();
    for run in 0..20 {
        let app2 = Arc::clone(&app);
        let out = tokio::task::spawn_blocking(move || app2.cli(&["verify"], &[]))
            .await
            .expect("verify ran");
        if !out.status.success() {
            failures.push(format!(
                "run {run}: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    let during = posted.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for p in posters {
        p.await.expect("poster");
    }
    let n = posted.load(Ordering::Relaxed);
    assert!(
        during >= 20,
        "gifts were recorded while verify ran: {during}"
    );
    assert!(
        failures.is_empty(),
        "{} of 20 failed: {failures:#?}",
        failures.len()
    );
    let fund = app.fund().await;
    assert_eq!(fund["donation_count"], n);
    assert!(app.verify().is_ok());
}

/// Strict mode: a target below raised + reserved would let a payment under way pass it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_a_target_below_what_is_reserved() {
    let app =
        spawn_app_with_stripe(&[("FUND_CAP_MODE", "strict"), ("FUND_TARGET", "100.00")]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;
    app.record_gifts(&treasurer, &["10.00"]).await;
    let resp = app.donate("60.00").await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    let pi = body["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("intent id")
        .to_owned();

    let refused = assert_problem(
        app.put_fund(&admin, &json!({ "target": "50.00" })).await,
        409,
        "target_below_reserved",
    )
    .await;
    assert_eq!(refused["reserved"], "60.00");
    assert_eq!(refused["minimum"], "70.00");
    assert_eq!(app.fund().await["target"], "100.00", "nothing changed");
    assert_problem(
        app.put_fund(&admin, &json!({ "target": "69.99" })).await,
        409,
        "target_below_reserved",
    )
    .await;
    assert_eq!(
        app.put_fund(&admin, &json!({ "target": "70.00" }))
            .await
            .status(),
        200
    );

    let ls = app.stripe.as_ref().expect("localstripe");
    assert_eq!(ls.confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "70.00").await;
    assert_eq!(fund["raised"], "70.00");
    assert_eq!(fund["target"], "70.00", "raised never passes the target");
    assert_eq!(fund["intake"]["state"], "closed");
    // With nothing reserved, any target may be set again (at or below raised closes intake).
    assert_eq!(
        app.put_fund(&admin, &json!({ "target": "65.00" }))
            .await
            .status(),
        200
    );
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}
