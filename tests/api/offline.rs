//! Offline gifts: exact totals under parallel load, idempotency, receipts queued.

use std::sync::Arc;

use crowdledger::auth::Role;
use serde_json::json;

use crate::helpers::{assert_problem, gift, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cent_gifts_from_32_clients_sum_exactly() {
    let app = Arc::new(spawn_app().await);
    let token = Arc::new(app.token(Role::Treasurer).await);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..32_usize {
        let app = Arc::clone(&app);
        let token = Arc::clone(&token);
        tasks.spawn(async move {
            let mut created = 0;
            // 1,000 gifts spread over 32 clients: 8 clients send 32, 24 send 31.
            let n = if client < 8 { 32 } else { 31 };
            for _ in 0..n {
                let resp = app.post_offline(&token, &gift("0.01"), None).await;
                assert_eq!(resp.status(), 201);
                created += 1;
            }
            created
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.expect("client task");
    }
    assert_eq!(total, 1000);
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "10.00");
    assert_eq!(fund["donation_count"], 1000);
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.raised_minor, 1000);
    assert_eq!(app.count("donations"), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_posts_with_one_key_make_one_donation() {
    let app = Arc::new(spawn_app().await);
    let token = Arc::new(app.token(Role::Treasurer).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let app = Arc::clone(&app);
        let token = Arc::clone(&token);
        tasks.spawn(async move {
            let resp = app
                .post_offline(&token, &gift("25.00"), Some("check-1001"))
                .await;
            (resp.status().as_u16(), resp.text().await.expect("body"))
        });
    }
    let mut bodies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (status, body) = r.expect("task");
        assert_eq!(status, 201);
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the same"
    );
    assert_eq!(app.count("donations"), 1);
    assert_eq!(app.fund().await["raised"], "25.00");

    // Same key, different body: a named conflict, nothing written.
    let resp = app
        .post_offline(&token, &gift("26.00"), Some("check-1001"))
        .await;
    assert_problem(resp, 409, "idempotency_conflict").await;
    assert_eq!(app.count("donations"), 1);
    // Another key is another gift.
    let resp = app
        .post_offline(&token, &gift("25.00"), Some("check-1002"))
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(app.fund().await["raised"], "50.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_with_an_email_queues_exactly_one_receipt() {
    let app = spawn_app().await;
    let token = app.token(Role::Treasurer).await;
    let mut body = gift("40.00");
    body["email"] = json!("Donor@Example.org");
    body["locale"] = json!("zh-CN");
    let resp = app.post_offline(&token, &body, Some("k")).await;
    assert_eq!(resp.status(), 201);
    let replay = app.post_offline(&token, &body, Some("k")).await;
    assert_eq!(replay.status(), 201);
    // No email, no receipt.
    assert_eq!(
        app.post_offline(&token, &gift("1.00"), None).await.status(),
        201
    );
    assert_eq!(app.count("outbox"), 1);
    let listed = app
        .send(
            reqwest::Method::GET,
            "/api/donations?limit=10",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.expect("json");
    assert_eq!(listed["items"][0]["email"], "donor@example.org");
    assert_eq!(listed["items"][0]["amount"], "40.00");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_amounts_accept_any_positive_sum_up_to_the_maximum() {
    let app = spawn_app().await;
    let token = app.token(Role::Treasurer).await;
    // Below the page's minimum (1.00) is fine offline: the money has arrived.
    assert_eq!(
        app.post_offline(&token, &gift("0.50"), None).await.status(),
        201
    );
    assert_eq!(
        app.post_offline(&token, &gift("100000.00"), None)
            .await
            .status(),
        201
    );
    let resp = app.post_offline(&token, &gift("100000.01"), None).await;
    assert_problem(resp, 422, "invalid_amount").await;
    assert_eq!(app.fund().await["raised"], "100000.50");
}
