//! Two-person approval of large refunds (issue 23): above `APPROVAL_THRESHOLD` a refund waits
//! for a second admin, nothing reaches Stripe before, two approvals at once make one refund,
//! a rejected or expired request holds nothing, and the audit names both admins.

use crowdledger::auth::Role;
use crowdledger::db::schema::{audit_log, refund_requests};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with, spawn_app_with_stripe};

async fn post(app: &TestApp, path: &str, token: &str, body: Option<&Value>) -> reqwest::Response {
    app.send(reqwest::Method::POST, path, Some(token), body)
        .await
}

async fn refund(app: &TestApp, token: &str, id: i64, amount: &str) -> reqwest::Response {
    let body = json!({ "amount": amount, "reason": "the donor asked" });
    post(
        app,
        &format!("/api/admin/donations/{id}/refund"),
        token,
        Some(&body),
    )
    .await
}

async fn decide(app: &TestApp, token: &str, request: i64, verb: &str) -> reqwest::Response {
    post(
        app,
        &format!("/api/admin/approvals/{request}/{verb}"),
        token,
        None,
    )
    .await
}

/// Asks for a refund above the threshold; returns the request's id from the 202.
async fn ask(app: &TestApp, token: &str, id: i64, amount: &str) -> i64 {
    let resp = refund(app, token, id, amount).await;
    assert_eq!(resp.status(), 202, "waits for approval");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["state"], "pending_approval", "{body}");
    assert_eq!(body["amount"], amount, "{body}");
    body["refund_request"].as_i64().expect("request id")
}

/// An offline gift of `amount`; returns its id (the newest donation's).
async fn gift(app: &TestApp, token: &str, amount: &str) -> i64 {
    let resp = app
        .post_offline(token, &crate::helpers::gift(amount), None)
        .await;
    assert_eq!(resp.status(), 201);
    app.count("donations")
}

fn audits(app: &TestApp, action: &str) -> Vec<(String, Value)> {
    audit_log::table
        .filter(audit_log::action.eq(action))
        .select((audit_log::actor, audit_log::detail))
        .load::<(String, String)>(&mut app.conn())
        .expect("audit")
        .into_iter()
        .map(|(a, d)| (a, serde_json::from_str(&d).expect("detail json")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_refund_waits_for_a_second_admin() {
    let app = spawn_app_with(&[("APPROVAL_THRESHOLD", "100.00")]).await;
    let (asker, second) = (app.user(Role::Admin), app.token(Role::Admin).await);
    let asker_token = crate::helpers::login(&app, &asker).await;
    let id = gift(&app, &asker_token, "500.00").await;

    // At the threshold: refunded at once.
    assert_eq!(refund(&app, &asker_token, id, "100.00").await.status(), 200);
    assert_eq!(app.fund().await["raised"], "400.00");
    // Above it: written, held back, not refunded.
    let request = ask(&app, &asker_token, id, "300.00").await;
    assert_eq!(app.fund().await["raised"], "400.00", "nothing refunded yet");
    let problem = assert_problem(
        refund(&app, &asker_token, id, "100.01").await,
        422,
        "refund_exceeds_remaining",
    )
    .await;
    assert_eq!(
        problem["refundable"], "100.00",
        "the waiting 300 is held back"
    );
    assert_eq!(problem["pending"], "300.00");
    // The list shows it to admins only.
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/admin/approvals",
            Some(&second),
            None,
        )
        .await;
    let list: Value = resp.json().await.expect("json");
    assert_eq!(list[0]["id"], request, "{list}");
    assert_eq!(list[0]["requested_by"], asker.as_str(), "{list}");
    assert_eq!(list[0]["state"], "pending_approval", "{list}");
    let treasurer = app.token(Role::Treasurer).await;
    assert_problem(
        decide(&app, &treasurer, request, "approve").await,
        403,
        "forbidden",
    )
    .await;
    // Not by the admin who asked.
    assert_problem(
        decide(&app, &asker_token, request, "approve").await,
        403,
        "approval_own_request",
    )
    .await;
    assert_eq!(app.fund().await["raised"], "400.00");
    // A second admin: refunded.
    let resp = decide(&app, &second, request, "approve").await;
    assert_eq!(resp.status(), 200);
    let outcome: Value = resp.json().await.expect("json");
    assert_eq!(outcome["refunded"], "300.00", "{outcome}");
    assert_eq!(app.fund().await["raised"], "100.00");
    let again = assert_problem(
        decide(&app, &second, request, "approve").await,
        409,
        "approval_not_pending",
    )
    .await;
    assert_eq!(again["state"], "approved");
    assert_problem(
        decide(&app, &second, 9_999, "approve").await,
        404,
        "not_found",
    )
    .await;
    // The audit names both admins.
    let asked = audits(&app, "refund.approval_requested");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, asker);
    let approved = audits(&app, "refund.approved");
    assert_eq!(approved.len(), 1);
    assert_ne!(approved[0].0, asker, "approved by the second admin");
    assert_eq!(approved[0].1["requested_by"], asker.as_str());
    let approved_by: Option<String> = refund_requests::table
        .find(request)
        .select(refund_requests::approved_by)
        .first(&mut app.conn())
        .expect("row");
    assert_eq!(approved_by.as_deref(), Some(approved[0].0.as_str()));
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_or_expired_requests_hold_nothing_and_replays_say_so() {
    let app = spawn_app_with(&[("APPROVAL_THRESHOLD", "100.00")]).await;
    let (asker, second) = (app.user(Role::Admin), app.token(Role::Admin).await);
    let asker_token = crate::helpers::login(&app, &asker).await;
    let id = gift(&app, &asker_token, "500.00").await;
    let body = json!({ "amount": "300.00", "reason": "the donor asked" });
    let path = format!("/api/admin/donations/{id}/refund");
    let keyed = || {
        app.client
            .post(format!("{}{path}", app.addr))
            .bearer_auth(&asker_token)
            .header("Idempotency-Key", "big-refund-1")
            .json(&body)
    };
    let first: Value = keyed()
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let request = first["refund_request"].as_i64().expect("id");
    // A replay while it waits: the same answer, no second request.
    let replay = keyed().send().await.expect("send");
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    assert_eq!(app.count("refund_requests"), 1);
    // Rejected: nothing refunded, nothing held, the replay says so.
    assert_eq!(decide(&app, &second, request, "reject").await.status(), 200);
    let replay = assert_problem(
        keyed().send().await.expect("send"),
        409,
        "approval_not_pending",
    )
    .await;
    assert_eq!(replay["state"], "rejected");
    assert_problem(
        decide(&app, &second, request, "approve").await,
        409,
        "approval_not_pending",
    )
    .await;
    assert_eq!(app.fund().await["raised"], "500.00");
    assert_eq!(audits(&app, "refund.rejected").len(), 1);

    // Expired after seven days: it can no longer be approved and holds nothing.
    let request = ask(&app, &asker_token, id, "500.00").await;
    assert_problem(
        refund(&app, &asker_token, id, "1.00").await,
        422,
        "refund_exceeds_remaining",
    )
    .await;
    diesel::update(refund_requests::table.find(request))
        .set(
            refund_requests::created_at
                .eq(chrono::Utc::now().naive_utc() - chrono::Duration::days(8)),
        )
        .execute(&mut app.conn())
        .expect("age the request");
    let expired = assert_problem(
        decide(&app, &second, request, "approve").await,
        409,
        "approval_not_pending",
    )
    .await;
    assert_eq!(expired["state"], "expired");
    assert_eq!(
        refund(&app, &asker_token, id, "50.00").await.status(),
        200,
        "not held back"
    );
    assert_eq!(app.fund().await["raised"], "450.00");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_stripe_before_approval_and_two_approvals_refund_once() {
    let app = spawn_app_with_stripe(&[]).await;
    let asker = app.user(Role::Admin);
    let asker_token = crate::helpers::login(&app, &asker).await;
    let (b, c) = (app.token(Role::Admin).await, app.token(Role::Admin).await);
    let resp = app.donate("2000.00").await;
    let body: Value = resp.json().await.expect("json");
    let id = body["donation_id"].as_i64().expect("id");
    let pi = body["client_secret"].as_str().expect("secret");
    let pi = pi.split("_secret_").next().expect("pi").to_owned();
    let stripe = app.stripe.as_ref().expect("stripe");
    assert_eq!(stripe.confirm(&pi).await, "succeeded");
    app.wait_for_fund(|f| f["raised"] == "2000.00").await;

    // Above the default threshold of 1000.00.
    let request = ask(&app, &asker_token, id, "1500.00").await;
    let refunded_at_stripe = |intent: &Value| {
        intent["latest_charge"]["amount_refunded"]
            .as_i64()
            .or_else(|| intent["charges"]["data"][0]["amount_refunded"].as_i64())
    };
    assert_eq!(
        refunded_at_stripe(&stripe.intent(&pi).await),
        Some(0),
        "not before approval"
    );
    // Two admins approve at once: one refund at Stripe.
    let (one, two) = tokio::join!(
        decide(&app, &b, request, "approve"),
        decide(&app, &c, request, "approve")
    );
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(refunded_at_stripe(&stripe.intent(&pi).await), Some(150_000));
    assert_eq!(app.fund().await["raised"], "500.00");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_off_refunds_any_amount_at_once() {
    let app = spawn_app_with(&[("APPROVAL_THRESHOLD", "off")]).await;
    let admin = app.token(Role::Admin).await;
    let id = gift(&app, &admin, "5000.00").await;
    assert_eq!(refund(&app, &admin, id, "4000.00").await.status(), 200);
    assert_eq!(app.fund().await["raised"], "1000.00");
}
