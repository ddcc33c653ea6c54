//! The intake switch, target changes, and the audit log of admin actions.

use crowdledger::auth::Role;
use serde_json::json;

use crate::helpers::{assert_problem, gift, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_reopen_and_target_changes() {
    let app = spawn_app_with(&[("FUND_TARGET", "100.00")]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;

    let resp = app
        .put_intake(&admin, false, "Paused while the court decides.")
        .await;
    assert_eq!(resp.status(), 200);
    let fund: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(fund["intake"]["state"], "paused");
    assert_eq!(fund["intake"]["message"], "Paused while the court decides.");
    assert_eq!(app.fund().await["intake"]["accepting"], false);

    // Checks that arrive while paused are still recorded.
    assert_eq!(
        app.post_offline(&treasurer, &gift("60.00"), None)
            .await
            .status(),
        201
    );
    assert_eq!(app.put_intake(&admin, true, "").await.status(), 200);
    assert_eq!(app.fund().await["intake"]["state"], "open");

    // Reaching the target closes; reopening is refused until the target is raised.
    assert_eq!(
        app.post_offline(&treasurer, &gift("40.00"), None)
            .await
            .status(),
        201
    );
    assert_eq!(app.fund().await["intake"]["state"], "closed");
    assert_problem(
        app.put_intake(&admin, true, "").await,
        409,
        "target_reached",
    )
    .await;
    let resp = app
        .put_fund(
            &admin,
            &json!({ "target": "250.00", "name": "Community Legal Defense" }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let fund = app.fund().await;
    assert_eq!(fund["name"], "Community Legal Defense");
    assert_eq!(fund["target"], "250.00");
    assert_eq!(
        fund["intake"]["state"], "closed",
        "raising the target does not reopen by itself"
    );
    assert_eq!(
        app.put_intake(&admin, true, "Collecting for October.")
            .await
            .status(),
        200
    );
    assert_eq!(app.fund().await["intake"]["state"], "open");

    // A target at or below raised closes at once.
    assert_eq!(
        app.put_fund(&admin, &json!({ "target": "100.00" }))
            .await
            .status(),
        200
    );
    assert_eq!(app.fund().await["intake"]["state"], "closed");

    assert!(app.verify().is_ok());
    // pause, reopen, fund update, reopen, fund update (and the offline gifts' records).
    assert!(app.count("audit_log") >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_refund_lowers_raised_but_does_not_reopen() {
    let app = spawn_app_with(&[("FUND_TARGET", "100.00")]).await;
    let admin = app.token(Role::Admin).await;
    let resp: serde_json::Value = app
        .post_offline(&admin, &gift("100.00"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(resp["intake"], "closed");
    let id = resp["donation_id"].as_i64().expect("id");
    let path = format!("/api/admin/donations/{id}/refund");
    let refund = |amount: &str| json!({ "amount": amount, "reason": "returned check" });
    let resp = app
        .send(
            reqwest::Method::POST,
            &path,
            Some(&admin),
            Some(&refund("30.00")),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "70.00");
    assert_eq!(fund["intake"]["state"], "closed");
    assert_eq!(fund["donation_count"], 1);
    // More than what is left: refused, nothing changes.
    let resp = app
        .send(
            reqwest::Method::POST,
            &path,
            Some(&admin),
            Some(&refund("70.01")),
        )
        .await;
    assert_problem(resp, 422, "refund_exceeds_remaining").await;
    // The rest (no amount = all that is left).
    let resp = app
        .send(
            reqwest::Method::POST,
            &path,
            Some(&admin),
            Some(&json!({ "reason": "void" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "0.00");
    assert_eq!(fund["donation_count"], 0);
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn period_input_is_checked() {
    let app = spawn_app_with(&[]).await;
    let admin = app.token(Role::Admin).await;
    let resp = app
        .add_period(&admin, "Backwards", "2020-09-30", "2020-09-01", "10.00")
        .await;
    assert_problem(resp, 422, "invalid_request").await;
    let resp = app
        .add_period(&admin, "Bad budget", "2020-09-01", "2020-09-30", "-10")
        .await;
    assert_problem(resp, 422, "invalid_amount").await;
    let resp = app
        .add_period(&admin, "", "2020-09-01", "2020-09-30", "10")
        .await;
    assert_problem(resp, 422, "invalid_request").await;
    let created: serde_json::Value = app
        .add_period(&admin, "August", "2020-08-01", "2020-08-31", "10")
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_i64().expect("id");
    let body = json!({ "label": "August 2020", "starts_on": "2020-08-01", "ends_on": "2020-08-31", "budget": "12.50" });
    let resp = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/admin/periods/{id}"),
            Some(&admin),
            Some(&body),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let fund = app.fund().await;
    assert_eq!(fund["periods"][0]["label"], "August 2020");
    assert_eq!(fund["periods"][0]["budget"], "12.50");
    let resp = app
        .send(
            reqwest::Method::PUT,
            "/api/admin/periods/999",
            Some(&admin),
            Some(&body),
        )
        .await;
    assert_problem(resp, 404, "not_found").await;
    assert_eq!(app.count("periods"), 1);
}
