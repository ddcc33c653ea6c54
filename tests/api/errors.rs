//! Bad input: always a problem+json 4xx with a stable code, never a 500, and nothing written.

use crowdledger::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, gift, spawn_app};

async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(app.count("donations"), 0);
    assert_eq!(
        app.count("ledger_entries"),
        1,
        "only the fund's first entry"
    );
    assert_eq!(app.fund().await["raised"], "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_amounts_are_refused_with_invalid_amount() {
    let app = spawn_app().await;
    let token = app.token(Role::Treasurer).await;
    let hostile = [
        json!("1,000.00"),
        json!("1e3"),
        json!("-5"),
        json!("+5"),
        json!("0.001"),
        json!("NaN"),
        json!(""),
        json!(" "),
        json!("0"),
        json!("0.00"),
        json!("100000.01"),
        json!("Infinity"),
        json!("25."),
        json!("٣"),
        json!("1_000"),
        json!(25),
        json!(25.5),
        json!(null),
        json!(["5"]),
        json!("99999999999999999999999999"),
    ];
    for amount in hostile {
        let mut body = gift("1");
        body["amount"] = amount.clone();
        let resp = app.post_offline(&token, &body, None).await;
        let problem = assert_problem(resp, 422, "invalid_amount").await;
        assert_eq!(problem["field"], "amount", "{amount}");
    }
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_4xx_problems() {
    let app = spawn_app().await;
    let token = app.token(Role::Treasurer).await;
    let url = format!("{}/api/donations/offline", app.addr);
    let raw = |body: String, ct: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_problem(
        raw("{\"amount\": ".into(), "application/json")
            .await
            .expect("req"),
        400,
        "malformed_json",
    )
    .await;
    assert_problem(
        raw("[]".into(), "application/json").await.expect("req"),
        422,
        "invalid_request",
    )
    .await;
    assert_problem(
        raw("amount=5".into(), "application/x-www-form-urlencoded")
            .await
            .expect("req"),
        415,
        "unsupported_media_type",
    )
    .await;
    let big = format!("{{\"donor_name\": \"{}\"}}", "x".repeat(64 * 1024));
    assert_problem(
        raw(big, "application/json").await.expect("req"),
        413,
        "payload_too_large",
    )
    .await;

    let mut unknown = gift("5");
    unknown["is_admin"] = json!(true);
    assert_problem(
        app.post_offline(&token, &unknown, None).await,
        422,
        "invalid_request",
    )
    .await;
    let mut wrong_type = gift("5");
    wrong_type["donor_name"] = json!(42);
    assert_problem(
        app.post_offline(&token, &wrong_type, None).await,
        422,
        "invalid_request",
    )
    .await;
    for (field, value) in [
        ("method", json!("bitcoin")),
        ("donor_name", json!("   ")),
        ("email", json!("not-an-email")),
        ("received_on", json!("2020-13-01")),
        ("received_on", json!("2999-01-01")),
        ("locale", json!("fr")),
        ("reference", json!("x".repeat(101))),
    ] {
        let mut body = gift("5");
        body[field] = value;
        let problem = assert_problem(
            app.post_offline(&token, &body, None).await,
            422,
            "invalid_request",
        )
        .await;
        assert_eq!(problem["field"], field);
    }
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/donations?limit=100000",
            Some(&token),
            None,
        )
        .await;
    assert_problem(resp, 422, "invalid_request").await;
    let resp = app
        .send(reqwest::Method::GET, "/api/nothing-here", None, None)
        .await;
    assert_problem(resp, 404, "not_found").await;
    let resp = app
        .client
        .post(format!("{}/api/donations/offline", app.addr))
        .bearer_auth(&token)
        .header("Idempotency-Key", "has space")
        .json(&gift("5"))
        .send()
        .await
        .expect("req");
    assert_problem(resp, 422, "invalid_request").await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fund_document_has_the_public_shape() {
    let app = spawn_app().await;
    let fund = app.fund().await;
    assert_eq!(fund["name"], "Legal Defense Fund");
    assert_eq!(fund["currency"], "USD");
    assert_eq!(fund["target"], "1000000.00");
    assert_eq!(fund["raised"], "0.00");
    assert_eq!(fund["remaining"], "1000000.00");
    assert_eq!(fund["donation_count"], 0);
    assert_eq!(fund["intake"]["state"], "open");
    assert_eq!(fund["intake"]["accepting"], true);
    assert!(fund["intake"]["changed_at"].is_string());
    assert_eq!(fund["periods"], json!([]));
    let health = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status(), 200);
}
