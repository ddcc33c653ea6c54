//! Issue 18, items 4 and 7, against a real localstripe: fees settled in another currency keep
//! their currency (reports, payout reconciliation), and only this fund's events are credited
//! (another amount, currency, mode or account is stored, reported, never credited).

use std::collections::HashMap;

use crowdledger::auth::Role;
use crowdledger::db::schema::{donations, stripe_events};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_stripe};
use crate::localstripe::event;

/// Creates a donation through the API; returns (donation id, PaymentIntent id).
async fn create(app: &TestApp, amount: &str) -> (i64, String) {
    let resp = app.donate(amount).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    let secret = body["client_secret"].as_str().expect("client_secret");
    let pi = secret.split("_secret_").next().expect("pi id").to_owned();
    (body["donation_id"].as_i64().expect("id"), pi)
}

fn stripe(app: &TestApp) -> &crate::localstripe::LocalStripe {
    app.stripe.as_ref().expect("app started with localstripe")
}

/// Delivers a signed event; returns the webhook's status and answer.
async fn deliver(app: &TestApp, ev: &Value) -> (u16, Value) {
    let resp = app.deliver(ev, chrono::Utc::now().timestamp()).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A `payment_intent.succeeded` event for `pi`, naming `donation` in its metadata.
fn success(id: &str, pi: &str, amount: i64, currency: &str, donation: i64) -> Value {
    event(
        id,
        "payment_intent.succeeded",
        json!({
            "id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": currency, "status": "succeeded", "livemode": false,
            "latest_charge": format!("ch_{id}"), "metadata": { "donation_id": donation.to_string() },
        }),
    )
}

/// The stored event, as (applied, fact JSON), if stored.
fn stored_event(app: &TestApp, id: &str) -> Option<(bool, Value)> {
    let row: Option<(Option<chrono::NaiveDateTime>, String)> = stripe_events::table
        .find(id)
        .select((stripe_events::applied_at, stripe_events::fact))
        .first(&mut app.conn())
        .optional()
        .expect("read stripe_events");
    row.map(|(applied, fact)| {
        (
            applied.is_some(),
            serde_json::from_str(&fact).expect("fact json"),
        )
    })
}

/// The PaymentIntent we created is forgotten (its creation answer was lost), so its success
/// can only find the donation through `metadata.donation_id`.
fn untie(app: &TestApp, id: i64) {
    diesel::update(donations::table.find(id))
        .set(donations::payment_intent_id.eq(None::<String>))
        .execute(&mut app.conn())
        .expect("untie");
}

/// The donations export as one map (column → value) per donation id.
pub(crate) async fn csv_by_id(
    app: &TestApp,
    token: &str,
) -> HashMap<String, HashMap<String, String>> {
    let text = crate::reports::get_csv(app, "/api/reports/donations.csv", token).await;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            let row: HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect();
            (row["id"].clone(), row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fees_settled_in_another_currency_keep_it_in_reports_and_payouts() {
    // An EUR fund whose Stripe account settles in USD (localstripe pays out in EUR only, and
    // a payout's own currency plays no part in matching its transactions).
    let app = spawn_app_with_stripe(&[("FUND_CURRENCY", "EUR")]).await;
    let admin = app.token(Role::Admin).await;
    let ls = stripe(&app);
    let resp = app
        .client
        .post(format!("{}/_config/settlement", ls.base))
        .form(&[
            ("currency", "usd"),
            ("exchange_rate", "1.1"),
            ("fee_percent", "2.9"),
            ("fee_fixed", "30"),
        ])
        .send()
        .await
        .expect("configure localstripe");
    assert!(resp.status().is_success(), "settlement configured");

    let (id, pi) = create(&app, "50.00").await;
    assert_eq!(ls.confirm(&pi).await, "succeeded");
    app.wait_for_fund(|f| f["raised"] == "50.00").await;
    let mut fee = None;
    for _ in 0..100 {
        fee = donations::table
            .find(id)
            .select(donations::fee_minor)
            .first::<Option<i64>>(&mut app.conn())
            .expect("row");
        if fee.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(fee.is_some(), "the fee was fetched");

    // 50.00 EUR became 55.00 USD; Stripe took 2.9% + 0.30 of that: 1.90 USD, net 53.10 USD.
    let csv = csv_by_id(&app, &admin).await;
    let row = &csv[&id.to_string()];
    assert_eq!(
        row.get("fee_currency").map(String::as_str),
        Some("USD"),
        "the export says which currency fee and net are in: {row:?}"
    );
    assert_eq!(
        (
            row["amount"].as_str(),
            row["currency"].as_str(),
            row["fee"].as_str(),
            row["net"].as_str(),
            row["settled_amount"].as_str(),
            row["exchange_rate"].as_str()
        ),
        ("50.00", "EUR", "1.90", "53.10", "55.00", "1.1"),
        "{row:?}"
    );

    // The summary's fees and net are the fund's currency's; the USD ones are beside them.
    let summary = app.get_json("/api/reports/summary", &admin).await;
    assert_eq!(summary["totals"]["gross"], "50.00", "{summary}");
    assert_eq!(
        summary["totals"]["fees"], "0.00",
        "no USD fee passes for EUR: {summary}"
    );
    assert_eq!(
        summary["settled_in_other_currencies"],
        json!([{ "currency": "USD", "gifts": 1, "settled": "55.00", "fees": "1.90", "net": "53.10" }]),
        "{summary}"
    );

    // A 10.00 EUR refund settles as -11.00 USD.
    let resp = app
        .send(
            reqwest::Method::POST,
            &format!("/api/admin/donations/{id}/refund"),
            Some(&admin),
            Some(&json!({ "amount": "10.00", "reason": "asked" })),
        )
        .await;
    assert_eq!(resp.status(), 200);

    // The payout's transactions (USD) agree with the ledger's record of them: no false
    // mismatch for the charge, nor for the refund.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let payout: Value = app
        .client
        .post(format!("{}/v1/payouts", ls.base))
        .basic_auth(crate::localstripe::SECRET_KEY, Some(""))
        .form(&[("amount", "5310"), ("currency", "eur"), ("status", "paid")])
        .send()
        .await
        .expect("payout")
        .json()
        .await
        .expect("json");
    let po = payout["id"].as_str().expect("po id").to_owned();
    let mut row = Value::Null;
    for _ in 0..100 {
        let list: Value = app.get_json("/api/reports/payouts", &admin).await;
        row = list["payouts"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == po.as_str()).cloned())
            .unwrap_or(Value::Null);
        if !row["reconciled_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (&row["matched"], &row["differences"]),
        (&json!(2), &json!(0)),
        "{row}"
    );
    let matched = row["report"]["matched"].as_array().expect("matched");
    let refund = matched
        .iter()
        .find(|l| l["type"] == "refund")
        .expect("the refund matched");
    assert_eq!(
        (&refund["amount"], &refund["refunded_in_gift_currency"]),
        (&json!(-1100), &json!(1000)),
        "{refund}"
    );
    let line = matched
        .iter()
        .find(|l| l["type"] == "charge")
        .expect("the charge matched");
    assert_eq!(
        (
            &line["donation_id"],
            &line["currency"],
            &line["amount"],
            &line["fee"],
            &line["net"],
            &line["ledger_currency"],
            &line["ledger_amount"]
        ),
        (
            &json!(id),
            &json!("usd"),
            &json!(5500),
            &json!(190),
            &json!(5310),
            &json!("usd"),
            &json!(5500)
        ),
        "{line}"
    );
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// A 25.00 card donation untied from its intent, then a success naming it by metadata with
/// `amount`/`currency`: answered `mismatch`, nothing credited, stored as done and foreign.
/// Returns the app, the donation's own intent and the stored fact.
async fn mismatch_stored(
    event: &str,
    intent: &str,
    amount: i64,
    currency: &str,
) -> (crate::helpers::TestApp, String, Value) {
    let app = spawn_app_with_stripe(&[]).await;
    let (id, pi) = create(&app, "25.00").await;
    untie(&app, id);
    let (status, body) = deliver(&app, &success(event, intent, amount, currency, id)).await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"], "mismatch", "{body}");
    assert_eq!(app.fund().await["raised"], "0.00");
    assert_eq!(app.donation_status(id), "pending");
    let (applied, fact) = stored_event(&app, event).expect("stored");
    assert!(applied, "stored as done, not kept waiting");
    assert_eq!(fact["fact"], "foreign", "{fact}");
    (app, pi, fact)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_naming_our_donation_for_another_amount_is_stored_not_credited() {
    // Someone's 1.00 payment names our 25.00 donation.
    let (app, pi, fact) = mismatch_stored("evt_cheap", "pi_cheap", 100, "usd").await;
    assert_eq!(fact["said"]["payment_intent"], "pi_cheap", "{fact}");
    assert_eq!(fact["said"]["amount"], 100, "{fact}");
    assert!(
        fact["reason"]
            .as_str()
            .is_some_and(|r| r.contains("received 100")),
        "{fact}"
    );
    assert_eq!(app.count("audit_log WHERE action = 'payment.mismatch'"), 1);
    // The donor's own payment, for the amount asked, is still credited.
    assert_eq!(stripe(&app).confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "25.00").await;
    assert_eq!(fund["raised"], "25.00");
    assert_eq!(fund["donation_count"], 1);
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_naming_our_donation_in_another_currency_is_stored_not_credited() {
    let (app, pi, fact) = mismatch_stored("evt_eur", "pi_eur", 2500, "eur").await;
    assert_eq!(fact["said"]["currency"], "eur", "{fact}");
    assert!(
        fact["reason"].as_str().is_some_and(|r| r.contains("eur")),
        "{fact}"
    );
    assert_eq!(app.count("audit_log WHERE action = 'payment.mismatch'"), 1);
    assert_eq!(stripe(&app).confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "25.00").await;
    assert_eq!(fund["raised"], "25.00");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_the_other_mode_are_acknowledged_and_stored_as_foreign() {
    // The app's key is a test key (`sk_test_...`).
    let app = spawn_app_with_stripe(&[]).await;
    let (id, pi) = create(&app, "25.00").await;
    // A live-mode event about our intent, amount and donation: right in all but the mode.
    let mut live = success("evt_live", &pi, 2500, "usd", id);
    live["livemode"] = json!(true);
    live["data"]["object"]["livemode"] = json!(true);
    // The envelope says test, the object says live.
    let mut object_live = success("evt_object_live", &pi, 2500, "usd", id);
    object_live["data"]["object"]["livemode"] = json!(true);
    for ev in [&live, &object_live] {
        let (status, body) = deliver(&app, ev).await;
        assert_eq!(status, 200);
        assert_eq!(body["outcome"], "foreign", "{body}");
        // A repeat is a repeat.
        let (status, body) = deliver(&app, ev).await;
        assert_eq!((status, &body["outcome"]), (200, &json!("duplicate")));
        let evt = ev["id"].as_str().expect("id");
        let (applied, fact) = stored_event(&app, evt).expect("stored");
        assert!(applied, "stored as done, not kept waiting");
        assert_eq!(fact["fact"], "foreign", "{fact}");
        assert!(
            fact["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("live-mode")),
            "{fact}"
        );
        assert_eq!(fact["said"]["fact"], "payment_succeeded", "{fact}");
    }
    assert_eq!(app.fund().await["raised"], "0.00");
    assert_eq!(app.donation_status(id), "pending");
    // The test-mode success is ours.
    assert_eq!(stripe(&app).confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "25.00").await;
    assert_eq!(fund["raised"], "25.00");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_another_account_are_acknowledged_and_stored_as_foreign() {
    let app = spawn_app_with_stripe(&[("STRIPE_ACCOUNT_ID", "acct_ours")]).await;
    let (id, pi) = create(&app, "25.00").await;
    let mut theirs = success("evt_theirs", &pi, 2500, "usd", id);
    theirs["account"] = json!("acct_theirs");
    let (status, body) = deliver(&app, &theirs).await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"], "foreign", "{body}");
    let (applied, fact) = stored_event(&app, "evt_theirs").expect("stored");
    assert!(applied, "stored as done, not kept waiting");
    assert!(
        fact["reason"]
            .as_str()
            .is_some_and(|r| r.contains("acct_theirs")),
        "{fact}"
    );
    assert_eq!(app.fund().await["raised"], "0.00");
    assert_eq!(app.donation_status(id), "pending");
    // The configured account's event is ours.
    let mut ours = success("evt_ours", &pi, 2500, "usd", id);
    ours["account"] = json!("acct_ours");
    let (status, body) = deliver(&app, &ours).await;
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("applied")),
        "{body}"
    );
    assert_eq!(app.fund().await["raised"], "25.00");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_does_not_credit_a_payment_naming_our_donation_for_another_amount() {
    let app = spawn_app_with_stripe(&[]).await;
    let (id, _pi) = create(&app, "25.00").await;
    untie(&app, id);
    let ls = stripe(&app);
    ls.lose_webhooks().await;
    // A 1.00 payment at Stripe whose metadata names our 25.00 donation; its webhook is lost.
    let other: Value = app
        .client
        .post(format!("{}/v1/payment_intents", ls.base))
        .basic_auth(crate::localstripe::SECRET_KEY, Some(""))
        .form(&[
            ("amount", "100"),
            ("currency", "usd"),
            ("metadata[donation_id]", &id.to_string()),
        ])
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let other_pi = other["id"].as_str().expect("id").to_owned();
    assert_eq!(ls.confirm(&other_pi).await, "succeeded");
    let out = app.cli(&["reconcile"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("not credited {other_pi}")),
        "{stdout}"
    );
    assert!(stdout.contains("recorded 0 missed donation"), "{stdout}");
    assert!(stdout.contains("1 not matching their donation"), "{stdout}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.fund().await["raised"], "0.00");
    assert_eq!(app.donation_status(id), "pending");
    assert_eq!(app.count("audit_log WHERE action = 'payment.mismatch'"), 1);
}
