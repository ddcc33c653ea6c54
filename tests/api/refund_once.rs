//! A refund happens once (issue 18, item 2): `POST /api/admin/donations/{id}/refund` honours
//! `Idempotency-Key`, a retry after Stripe refunded but the ledger did not record never asks
//! Stripe for a second refund, and two instances refunding one donation at once refund it
//! once. Against a real localstripe, extended by `tests/peers/localstripe_refunds.py` with
//! what Stripe does and it lacks (idempotency keys, `charge.refunded`, no refund beyond the
//! charge), and, for the failed ledger write, a small real proxy in front of it.

mod outage;

use crowdledger::auth::Role;
use crowdledger::config::Config;
use diesel::prelude::*;
use serde_json::{Value, json};

use outage::{Proxy, outage};

use crate::helpers::{JWT_SECRET, TestApp, assert_problem, spawn_app_with_stripe};
use crate::localstripe::SECRET_KEY;

/// A card gift of `amount`, paid at localstripe and recorded; returns (donation, intent).
async fn paid_gift(app: &TestApp, amount: &str) -> (i64, String) {
    let resp = app.donate(amount).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    let secret = body["client_secret"].as_str().expect("client_secret");
    let pi = secret.split("_secret_").next().expect("pi id").to_owned();
    let ls = app.stripe.as_ref().expect("stripe");
    assert_eq!(ls.confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["donation_count"] == 1).await;
    assert_eq!(fund["raised"], amount, "the gift is recorded");
    (body["donation_id"].as_i64().expect("id"), pi)
}

/// `POST /api/admin/donations/{id}/refund` on the instance at `addr`.
async fn refund(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    id: i64,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{addr}/api/admin/donations/{id}/refund"))
        .bearer_auth(token)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("refund request")
}

/// The refunds localstripe made of `pi`, and what its charge says is refunded in all.
async fn refunds_at_stripe(app: &TestApp, pi: &str) -> (Vec<i64>, i64) {
    let ls = app.stripe.as_ref().expect("stripe");
    let client = reqwest::Client::new();
    let list: Value = client
        .get(format!("{}/v1/refunds?payment_intent={pi}", ls.base))
        .basic_auth(SECRET_KEY, Some(""))
        .send()
        .await
        .expect("refunds listed")
        .json()
        .await
        .expect("refunds json");
    let amounts = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["amount"].as_i64().expect("amount"))
        .collect();
    let intent = ls.intent(pi).await;
    let total = intent["latest_charge"]["amount_refunded"]
        .as_i64()
        .expect("amount_refunded");
    (amounts, total)
}

/// Another instance of the app on the same database and the same Stripe.
struct Instance {
    addr: String,
    shutdown: crowdledger::http::Shutdown,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

fn second_instance(app: &TestApp) -> Instance {
    let ls = app.stripe.as_ref().expect("stripe");
    let vars = [
        ("DATABASE_URL", app.database_url()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("HTTP_WORKERS", "2".to_owned()),
        ("DATABASE_POOL_SIZE", "3".to_owned()),
        ("STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_crowdledger".to_owned()),
        ("STRIPE_WEBHOOK_SECRET", app.webhook_secret.clone()),
        ("STRIPE_API_BASE", ls.base.clone()),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("config");
    let running = crowdledger::http::start(config).expect("second instance starts");
    let addr = format!("http://127.0.0.1:{}", running.port);
    let shutdown = running.shutdown.clone();
    tokio::spawn(running.server);
    Instance { addr, shutdown }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_recorded_by_the_webhook_after_a_failed_write_is_not_made_again_on_retry() {
    let proxy = Proxy::start();
    let app = spawn_app_with_stripe(&[("STRIPE_API_BASE", &proxy.base)]).await;
    let ls = app.stripe.as_ref().expect("stripe");
    proxy
        .state
        .upstream
        .set(ls.base.clone())
        .expect("upstream set once");
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    let body = json!({ "amount": "25.00", "reason": "donor asked" });

    // Stripe refunds; as its answer comes back the database refuses writes.
    let (made, go) = proxy.arm().await;
    let first = {
        let (client, addr, admin, body) = (
            app.client.clone(),
            app.addr.clone(),
            admin.clone(),
            body.clone(),
        );
        tokio::spawn(
            async move { refund(&client, &addr, &admin, id, Some("refund-a-1"), &body).await },
        )
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), made)
        .await
        .expect("the refund reached Stripe")
        .expect("proxy told");
    let down = outage(&app);
    go.send(()).expect("proxy waits");
    let first = first.await.expect("request task");
    assert_problem(first, 503, "unavailable").await;
    drop(down);
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![2500], 2500));

    // Stripe's `charge.refunded` records it.
    let fund = app.wait_for_fund(|f| f["raised"] == "35.00").await;
    assert_eq!(fund["raised"], "35.00", "the webhook recorded the refund");

    // The admin retries with the same key: the refund is finished, not made again.
    let retry = refund(
        &app.client,
        &app.addr,
        &admin,
        id,
        Some("refund-a-1"),
        &body,
    )
    .await;
    assert_eq!(retry.status(), 200);
    let answer: Value = retry.json().await.expect("json");
    assert_eq!(answer["refunded"], "25.00");
    assert_eq!(answer["refunded_total"], "25.00");
    assert_eq!(answer["refundable"], "35.00");
    assert_eq!(answer["raised"], "35.00");
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![2500], 2500));

    // And once more: the stored answer, still one refund.
    let again = refund(
        &app.client,
        &app.addr,
        &admin,
        id,
        Some("refund-a-1"),
        &body,
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json"), answer);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![2500], 2500));
    assert_eq!(app.fund().await["raised"], "35.00");
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_refunding_one_donation_at_once_refund_it_once() {
    let app = spawn_app_with_stripe(&[]).await;
    let other = second_instance(&app);
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    let body = json!({ "amount": "60.00", "reason": "duplicate gift" });
    let (a, b) = tokio::join!(
        refund(
            &app.client,
            &app.addr,
            &admin,
            id,
            Some("instance-a"),
            &body
        ),
        refund(
            &app.client,
            &other.addr,
            &admin,
            id,
            Some("instance-b"),
            &body
        ),
    );
    let mut answers = Vec::new();
    for resp in [a, b] {
        let status = resp.status().as_u16();
        answers.push((status, resp.json::<Value>().await.expect("json")));
    }
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(
        answers.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![200, 422],
        "{answers:?}"
    );
    assert_eq!(answers[0].1["refunded"], "60.00");
    assert_eq!(answers[1].1["code"], "refund_exceeds_remaining");
    assert_eq!(answers[1].1["refundable"], "0.00");
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![6000], 6000));
    let fund = app.wait_for_fund(|f| f["raised"] == "0.00").await;
    assert_eq!(fund["raised"], "0.00");
    assert_eq!(fund["donation_count"], 0);
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_replays_the_answer_and_another_request_with_it_conflicts() {
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    let ten = json!({ "amount": "10", "reason": "partial" });
    let first = refund(&app.client, &app.addr, &admin, id, Some("k-card"), &ten).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["refunded"], "10.00");
    // The same request ("10" and "10.00" are one amount): the same answer, no second refund.
    let same = json!({ "amount": "10.00", "reason": "partial" });
    let replay = refund(&app.client, &app.addr, &admin, id, Some("k-card"), &same).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![1000], 1000));
    // The key with another amount, or another donation: 409, nothing refunded.
    let eleven = json!({ "amount": "11.00", "reason": "partial" });
    let resp = refund(&app.client, &app.addr, &admin, id, Some("k-card"), &eleven).await;
    assert_problem(resp, 409, "idempotency_conflict").await;
    // An offline gift: refunded once per key as well.
    let resp = app
        .post_offline(&admin, &crate::helpers::gift("40.00"), None)
        .await;
    assert_eq!(resp.status(), 201);
    let offline_id = resp.json::<Value>().await.expect("json")["donation_id"]
        .as_i64()
        .expect("id");
    let resp = refund(
        &app.client,
        &app.addr,
        &admin,
        offline_id,
        Some("k-card"),
        &ten,
    )
    .await;
    assert_problem(resp, 409, "idempotency_conflict").await;
    let off = refund(
        &app.client,
        &app.addr,
        &admin,
        offline_id,
        Some("k-off"),
        &ten,
    )
    .await;
    assert_eq!(off.status(), 200);
    let off: Value = off.json().await.expect("json");
    let again = refund(
        &app.client,
        &app.addr,
        &admin,
        offline_id,
        Some("k-off"),
        &same,
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json"), off);
    let fund = app.wait_for_fund(|f| f["raised"] == "80.00").await;
    assert_eq!(
        fund["raised"], "80.00",
        "60 + 40 - 10 - 10, each refund once"
    );
    // A key that is not 1 to 255 visible ASCII characters is refused before anything.
    let resp = refund(&app.client, &app.addr, &admin, id, Some("with space"), &ten).await;
    assert_problem(resp, 422, "invalid_request").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![1000], 1000));
    assert_eq!(app.fund().await["raised"], "80.00");
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}

/// A refund made at the fake Stripe directly (as in Stripe's dashboard, or by an attempt
/// that died before recording it), naming `request` in its metadata when given.
async fn refund_at_stripe(app: &TestApp, pi: &str, amount_minor: i64, request: Option<i64>) {
    let ls = app.stripe.as_ref().expect("stripe");
    let amount = amount_minor.to_string();
    let request = request.map(|r| r.to_string());
    let mut form = vec![("payment_intent", pi), ("amount", amount.as_str())];
    if let Some(r) = &request {
        form.push(("metadata[refund_request]", r.as_str()));
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/refunds", ls.base))
        .basic_auth(SECRET_KEY, Some(""))
        .form(&form)
        .send()
        .await
        .expect("refund at localstripe");
    assert!(resp.status().is_success());
}

/// A card refund request left open by an attempt that died an hour ago (the instance
/// stopped between writing it and recording Stripe's answer); returns its id.
fn abandoned_request(app: &TestApp, donation_id: i64, amount_minor: i64) -> i64 {
    opened_long_ago(app, donation_id, amount_minor, None, "")
}

fn opened_long_ago(
    app: &TestApp,
    donation_id: i64,
    amount_minor: i64,
    key: Option<&str>,
    hash: &str,
) -> i64 {
    use crowdledger::db::models::NewRefundRequest;
    use crowdledger::db::schema::refund_requests;
    let then = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(1);
    diesel::insert_into(refund_requests::table)
        .values(&NewRefundRequest {
            idempotency_key: key,
            request_hash: hash,
            donation_id,
            amount_minor,
            actor: "admin-0@example.org",
            reason: "asked before the crash",
            state: "requested",
            stripe_refund_id: None,
            outside_stripe: false,
            status_code: None,
            response_body: None,
            created_at: then,
            updated_at: then,
        })
        .returning(refund_requests::id)
        .get_result(&mut app.conn())
        .expect("request row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_attempt_died_are_settled_from_stripe_when_they_hold_money_back() {
    use crowdledger::db::schema::refund_requests;
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    // One attempt died after Stripe made its refund (20.00), one before (30.00).
    let made = abandoned_request(&app, id, 2000);
    let never = abandoned_request(&app, id, 3000);
    refund_at_stripe(&app, &pi, 2000, Some(made)).await;
    let fund = app.wait_for_fund(|f| f["raised"] == "40.00").await;
    assert_eq!(fund["raised"], "40.00", "charge.refunded recorded");
    // 40.00 is left, but the open requests hold 50.00 of it: the app learns from Stripe what
    // became of them (one made, one never), and the refund goes through.
    let body = json!({ "amount": "40.00", "reason": "the rest" });
    let resp = refund(
        &app.client,
        &app.addr,
        &admin,
        id,
        Some("after-crash"),
        &body,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["refunded"], "40.00");
    assert_eq!(answer["refunded_total"], "60.00");
    assert_eq!(answer["refundable"], "0.00");
    let (mut amounts, total) = refunds_at_stripe(&app, &pi).await;
    amounts.sort_unstable();
    assert_eq!((amounts, total), (vec![2000, 4000], 6000));
    let states: Vec<(i64, String)> = refund_requests::table
        .select((refund_requests::id, refund_requests::state))
        .order(refund_requests::id)
        .load(&mut app.conn())
        .expect("rows");
    assert_eq!(states[0], (made, "done".to_owned()));
    assert_eq!(states[1], (never, "failed".to_owned()));
    assert_eq!(states[2].1, "done");
    assert_eq!(app.fund().await["raised"], "0.00");
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_stripe_refuses_is_answered_the_same_again_and_holds_nothing_back() {
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    // Refunded in Stripe's dashboard while its event is lost: the ledger still counts 60.00.
    let ls = app.stripe.as_ref().expect("stripe");
    ls.lose_webhooks().await;
    refund_at_stripe(&app, &pi, 6000, None).await;
    let body = json!({ "amount": "10.00", "reason": "asked" });
    let resp = refund(&app.client, &app.addr, &admin, id, Some("refused"), &body).await;
    let refused = assert_problem(resp, 502, "payment_provider_error").await;
    // The same request: the stored refusal.
    let resp = refund(&app.client, &app.addr, &admin, id, Some("refused"), &body).await;
    assert_eq!(
        assert_problem(resp, 502, "payment_provider_error").await,
        refused
    );
    // The refused request holds nothing back: a new one reaches Stripe (refused again).
    let resp = refund(&app.client, &app.addr, &admin, id, Some("refused-2"), &body).await;
    assert_problem(resp, 502, "payment_provider_error").await;
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![6000], 6000));
    assert_eq!(app.fund().await["raised"], "60.00");
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resumed_long_after_finds_the_refund_stripe_made_instead_of_asking_again() {
    use sha2::Digest;
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    let (id, pi) = paid_gift(&app, "60.00").await;
    // An hour ago: the request was written, Stripe made its refund, the instance died and
    // the event was lost. Stripe may have forgotten the key since (after a day it does).
    let ls = app.stripe.as_ref().expect("stripe");
    ls.lose_webhooks().await;
    let hash = hex::encode(sha2::Sha256::digest(
        json!([id, 2500, "donor asked"]).to_string(),
    ));
    let request = opened_long_ago(&app, id, 2500, Some("refund:late"), &hash);
    refund_at_stripe(&app, &pi, 2500, Some(request)).await;
    // The admin retries with the same key: the refund Stripe made is recorded, not made again.
    let body = json!({ "amount": "25.00", "reason": "donor asked" });
    let resp = refund(&app.client, &app.addr, &admin, id, Some("late"), &body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["refunded_total"], "25.00");
    assert_eq!(answer["raised"], "35.00");
    assert_eq!(refunds_at_stripe(&app, &pi).await, (vec![2500], 2500));
    assert!(app.verify().is_ok(), "{:?}", app.verify());
}
