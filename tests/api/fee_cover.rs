//! Cover the fee (issue 24): with `FEE_COVER=on` a donor may add what the card processor keeps
//! (2.9% + 0.30 by default, rounded up so the fund gets the whole gift); the donation records
//! what was charged and the part added; raised counts the charge; the receipt and the report
//! show both; strict mode reserves the whole charge; offline gifts never take it.

use crowdledger::auth::Role;
use crowdledger::db::schema::donations;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with, spawn_app_with_stripe};
use crate::smtp::SmtpSink;

async fn give(app: &TestApp, amount: &str, cover: bool) -> reqwest::Response {
    let body = json!({ "amount": amount, "donor_name": "Mei Chen", "email": "mei@example.org",
        "anonymous": false, "locale": "en", "cover_fee": cover });
    app.send(reqwest::Method::POST, "/api/donations", None, Some(&body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donor_covers_the_fee_and_the_fund_gets_the_whole_gift() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with_stripe(&[("FEE_COVER", "on"), ("SMTP_URL", &smtp)]).await;
    let resp = give(&app, "100.00", true).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    // (100.00 + 0.30) / 0.971 = 103.2955... -> 103.30.
    assert_eq!(body["amount"], "103.30", "{body}");
    assert_eq!(body["fee_covered"], "3.30", "{body}");
    let pi = body["client_secret"].as_str().expect("secret");
    let pi = pi.split("_secret_").next().expect("pi").to_owned();
    let stripe = app.stripe.as_ref().expect("stripe");
    assert_eq!(
        stripe.intent(&pi).await["amount"],
        10_330,
        "Stripe charges the whole"
    );
    assert_eq!(stripe.confirm(&pi).await, "succeeded");
    app.wait_for_fund(|f| f["raised"] == "103.30").await;
    let id = body["donation_id"].as_i64().expect("id");
    let covered: i64 = donations::table
        .find(id)
        .select(donations::fee_covered_minor)
        .first(&mut app.conn())
        .expect("row");
    assert_eq!(covered, 330);
    let mails = sink.wait_for(1, 15).await;
    let text = mails[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("103.30 USD") && text.contains("3.30 USD"),
        "{text}"
    );
    let treasurer = app.token(Role::Treasurer).await;
    let csv = crate::reports::get_csv(&app, "/api/reports/donations.csv", &treasurer).await;
    let row = crate::reports::rows(&csv)
        .into_iter()
        .next()
        .expect("a row");
    assert_eq!(&row[8], "103.30");
    // `fee_covered`, then `payment_method_type` (the charge's: a card here).
    assert_eq!(row.get(21), Some("3.30"));
    assert_eq!(row.get(22), Some("card"));
    // Not asked: nothing added.
    let plain: Value = give(&app, "100.00", false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (plain["amount"].as_str(), plain["fee_covered"].as_str()),
        (Some("100.00"), Some("0.00"))
    );
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_reserves_the_whole_charge_and_only_card_gifts_offer_it() {
    let app = spawn_app_with_stripe(&[
        ("FEE_COVER", "on"),
        ("FUND_TARGET", "200.00"),
        ("FUND_CAP_MODE", "strict"),
    ])
    .await;
    assert_eq!(give(&app, "100.00", true).await.status(), 201);
    let refused = assert_problem(give(&app, "97.00", false).await, 409, "exceeds_remaining").await;
    assert_eq!(refused["remaining"], "96.70", "103.30 is reserved");
    let admin = app.token(Role::Admin).await;
    let offline =
        json!({ "amount": "10.00", "donor_name": "Ann", "method": "check", "cover_fee": true });
    let resp = app.post_offline(&admin, &offline, None).await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(app.count("donations"), 1, "nothing recorded");
    // The page offers it, with the fee model the server uses.
    let html = app
        .client
        .get(format!("{}/?lang=zh-CN", app.addr))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("id=\"cover-fee\"")
            && html.contains("data-percent=\"290\"")
            && html.contains("data-fixed=\"30\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default() {
    let app = spawn_app_with_stripe(&[]).await;
    let problem = assert_problem(give(&app, "100.00", true).await, 422, "invalid_request").await;
    assert_eq!(problem["field"], "cover_fee");
    assert_eq!(app.count("donations"), 0);
    let html = app
        .client
        .get(format!("{}/", app.addr))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(!html.contains("cover-fee"));
    let no_stripe = spawn_app_with(&[("FEE_COVER", "on")]).await;
    let html = no_stripe
        .client
        .get(format!("{}/", no_stripe.addr))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        !html.contains("cover-fee"),
        "no card giving, no fee to cover"
    );
}
