//! Card donations against a real localstripe: the full path, exactly-once recording under
//! duplicate and reordered deliveries, signatures, closing at the target, reconcile.

use std::sync::Arc;

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, spawn_app_with_stripe};
use crate::localstripe::event;

/// Creates a donation through the API; returns (donation id, PaymentIntent id).
async fn create(app: &crate::helpers::TestApp, amount: &str) -> (i64, String) {
    let resp = app.donate(amount).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    let secret = body["client_secret"].as_str().expect("client_secret");
    let pi = secret.split("_secret_").next().expect("pi id").to_owned();
    assert_eq!(body["publishable_key"], "pk_test_crowdledger");
    assert_eq!(body["amount"], amount);
    (body["donation_id"].as_i64().expect("id"), pi)
}

fn stripe(app: &crate::helpers::TestApp) -> &crate::localstripe::LocalStripe {
    app.stripe.as_ref().expect("app started with localstripe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_gift_goes_from_intent_to_ledger_through_the_webhook() {
    let app = spawn_app_with_stripe(&[("FUND_TARGET", "1000.00")]).await;
    let admin = app.token(Role::Admin).await;
    assert_eq!(
        app.add_period(&admin, "August 2020", "2020-08-01", "2020-08-31", "20.00")
            .await
            .status(),
        201
    );
    let (id, pi) = create(&app, "25.50").await;
    let at_stripe = stripe(&app).intent(&pi).await;
    assert_eq!(at_stripe["amount"], 2550);
    assert_eq!(at_stripe["currency"], "usd");
    assert_eq!(at_stripe["metadata"]["donation_id"], id.to_string());
    assert_eq!(app.donation_status(id), "pending");
    assert_eq!(
        app.fund().await["raised"],
        "0.00",
        "pending money does not count"
    );

    assert_eq!(stripe(&app).confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "25.50").await;
    assert_eq!(fund["raised"], "25.50");
    assert_eq!(fund["donation_count"], 1);
    assert_eq!(fund["periods"][0]["covered"], "20.00");
    assert_eq!(fund["unallocated"], "5.50");
    assert_eq!(app.donation_status(id), "succeeded");
    // The receipt is queued once, in the donor's language.
    assert_eq!(app.count("outbox"), 1);
    // Fee and net come from the balance transaction (localstripe's fee is 0).
    let mut fees = (None, None);
    for _ in 0..50 {
        use crowdledger::db::schema::donations;
        use diesel::prelude::*;
        fees = donations::table
            .find(id)
            .select((donations::fee_minor, donations::net_minor))
            .first::<(Option<i64>, Option<i64>)>(&mut app.conn())
            .expect("row");
        if fees.0.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(fees, (Some(0), Some(2550)));
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_parallel_deliveries_and_a_resigned_copy_count_once() {
    let app = Arc::new(spawn_app_with_stripe(&[]).await);
    let (id, pi) = create(&app, "40.00").await;
    let e = event(
        "evt_dup_1",
        "payment_intent.succeeded",
        json!({
            "id": pi, "object": "payment_intent", "amount": 4000, "amount_received": 4000,
            "currency": "usd", "status": "succeeded", "latest_charge": "ch_dup_1",
            "metadata": { "donation_id": id.to_string() },
        }),
    );
    let now = chrono::Utc::now().timestamp();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let app = Arc::clone(&app);
        let e = e.clone();
        // Half signed a little earlier: a re-signed copy of the same event.
        tasks.spawn(async move { app.deliver(&e, now - (i % 2)).await.status().as_u16() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.expect("task"), 200);
    }
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "40.00");
    assert_eq!(fund["donation_count"], 1);
    assert_eq!(app.count("outbox"), 1, "one receipt");
    assert_eq!(app.count("stripe_events"), 1);
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_events_reach_the_same_totals_as_the_model() {
    let app = spawn_app_with_stripe(&[]).await;
    let (a, pi_a) = create(&app, "100.00").await;
    let (b, pi_b) = create(&app, "50.00").await;
    let (c, pi_c) = create(&app, "20.00").await;
    let ok = |id: i64, pi: &str, amount: i64, ch: &str| {
        json!({
        "id": pi, "amount": amount, "amount_received": amount, "currency": "usd",
        "latest_charge": ch, "metadata": { "donation_id": id.to_string() } })
    };
    let events = [
        // A: refund of 30 arrives before the success, then a second refund (cumulative 45).
        event(
            "evt_a_ref1",
            "charge.refunded",
            json!({ "id": "ch_a", "payment_intent": pi_a, "amount_refunded": 3000 }),
        ),
        event(
            "evt_a_ok",
            "payment_intent.succeeded",
            ok(a, &pi_a, 10000, "ch_a"),
        ),
        event(
            "evt_a_ref2",
            "charge.refunded",
            json!({ "id": "ch_a", "payment_intent": pi_a, "amount_refunded": 4500 }),
        ),
        // B: dispute closed (lost) before it was seen opening, then the late "created".
        event(
            "evt_b_closed",
            "charge.dispute.closed",
            json!({ "id": "dp_b", "charge": "ch_b", "payment_intent": pi_b, "amount": 5000, "status": "lost" }),
        ),
        event(
            "evt_b_ok",
            "payment_intent.succeeded",
            ok(b, &pi_b, 5000, "ch_b"),
        ),
        event(
            "evt_b_created",
            "charge.dispute.created",
            json!({ "id": "dp_b", "charge": "ch_b", "amount": 5000, "status": "needs_response" }),
        ),
        // C: dispute opened then won: reinstated.
        event(
            "evt_c_ok",
            "payment_intent.succeeded",
            ok(c, &pi_c, 2000, "ch_c"),
        ),
        event(
            "evt_c_created",
            "charge.dispute.created",
            json!({ "id": "dp_c", "charge": "ch_c", "amount": 2000, "status": "needs_response" }),
        ),
        event(
            "evt_c_won",
            "charge.dispute.closed",
            json!({ "id": "dp_c", "charge": "ch_c", "amount": 2000, "status": "won" }),
        ),
        // An event type we do not act on.
        event("evt_other", "customer.created", json!({ "id": "cus_1" })),
    ];
    let now = chrono::Utc::now().timestamp();
    for e in &events {
        assert_eq!(app.deliver(e, now).await.status(), 200, "{}", e["id"]);
        // And every one of them again: a replay is a no-op.
        assert_eq!(app.deliver(e, now).await.status(), 200);
    }
    // Model: A 100 - 45 = 55; B 50 - 50 (lost) = 0; C 20 (won).
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "75.00");
    assert_eq!(fund["donation_count"], 2, "B no longer counts");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_and_change_nothing() {
    let app = spawn_app_with_stripe(&[]).await;
    let (id, pi) = create(&app, "10.00").await;
    let e = event(
        "evt_sig",
        "payment_intent.succeeded",
        json!({
        "id": pi, "amount": 1000, "currency": "usd", "metadata": { "donation_id": id.to_string() } }),
    );
    let body = e.to_string();
    let now = chrono::Utc::now().timestamp();
    let sign = |secret: &str, at: i64, body: &str| {
        crowdledger::payments::signature::sign(secret.as_bytes(), at, body.as_bytes())
    };
    let good = sign(&app.webhook_secret, now, &body);
    let mut changed = body.clone().into_bytes();
    let i = body.find("1000").expect("amount in body");
    changed[i] = b'9';
    let changed = String::from_utf8(changed).expect("utf8");
    let forged = format!("t={now},v1={}", "ab".repeat(32));
    let cases: Vec<(&str, Option<String>, String)> = vec![
        ("forged", Some(forged), body.clone()),
        ("one byte changed", Some(good.clone()), changed),
        (
            "wrong secret",
            Some(sign("whsec_wrong", now, &body)),
            body.clone(),
        ),
        ("missing header", None, body.clone()),
        (
            "301 s old",
            Some(sign(&app.webhook_secret, now - 301, &body)),
            body.clone(),
        ),
    ];
    for (what, header, body) in cases {
        let mut req = app
            .client
            .post(format!("{}/webhooks/stripe", app.addr))
            .header("content-type", "application/json")
            .body(body);
        if let Some(h) = header {
            req = req.header("Stripe-Signature", h);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 400, "{what}");
        assert_problem(resp, 400, "bad_signature").await;
    }
    assert_eq!(app.fund().await["raised"], "0.00");
    assert_eq!(app.count("stripe_events"), 0);
    // The genuine one goes through.
    assert_eq!(app.deliver(&e, now).await.status(), 200);
    assert_eq!(app.fund().await["raised"], "10.00");
}

async fn race_to_the_target(app: Arc<crate::helpers::TestApp>) -> (Vec<(i64, String)>, Vec<Value>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let app = Arc::clone(&app);
        tasks.spawn(async move {
            let resp = app.donate("5.00").await;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.expect("json");
            if status != 201 {
                return Err(body);
            }
            let pi = body["client_secret"]
                .as_str()
                .expect("secret")
                .split("_secret_")
                .next()
                .expect("pi")
                .to_owned();
            let confirmed = app.stripe.as_ref().expect("stripe").confirm(&pi).await;
            Ok((body["donation_id"].as_i64().expect("id"), confirmed))
        });
    }
    let (mut created, mut refused) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(c) => created.push(c),
            Err(body) => refused.push(body),
        }
    }
    (created, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_cap_closes_at_the_target_and_cancels_outstanding_intents() {
    // Forty donors, all from 127.0.0.1 here: without this the per-address limit sees one.
    let app = Arc::new(
        spawn_app_with_stripe(&[("FUND_TARGET", "100.00"), ("RATE_LIMIT_DONATIONS", "off")]).await,
    );
    // Create all 40 first (all accepted while open), then confirm them concurrently.
    let mut made = Vec::new();
    for _ in 0..40 {
        made.push(create(&app, "5.00").await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (_, pi)) in made.iter().enumerate() {
        // Half the donors pay; the other half never finish, leaving their intents open.
        if i % 2 == 0 {
            let app = Arc::clone(&app);
            let pi = pi.clone();
            tasks.spawn(async move { app.stripe.as_ref().expect("stripe").confirm(&pi).await });
        }
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.expect("task"), "succeeded");
    }
    // 20 paid x 5.00 = 100.00: the target, so intake closes.
    let fund = app.wait_for_fund(|f| f["raised"] == "100.00").await;
    assert_eq!(fund["raised"], "100.00");
    assert_eq!(fund["intake"]["state"], "closed");
    // The 20 unpaid intents are cancelled at Stripe.
    let ls = app.stripe.as_ref().expect("stripe");
    for (i, (id, pi)) in made.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let mut status = String::new();
        for _ in 0..100 {
            status = ls.intent(pi).await["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if status == "canceled" && app.donation_status(*id) == "canceled" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, "canceled", "intent {i} cancelled at Stripe");
        assert_eq!(app.donation_status(*id), "canceled");
    }
    // New donations are refused while closed.
    assert_problem(app.donate("5.00").await, 409, "intake_closed").await;
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_cap_records_payments_under_way_flagged_after_close() {
    // Forty donors, all from 127.0.0.1 here: without this the per-address limit sees one.
    let app = Arc::new(
        spawn_app_with_stripe(&[("FUND_TARGET", "100.00"), ("RATE_LIMIT_DONATIONS", "off")]).await,
    );
    let (created, refused) = race_to_the_target(Arc::clone(&app)).await;
    assert!(
        refused.iter().all(|b| b["code"] == "intake_closed"),
        "{refused:?}"
    );
    let succeeded = created.iter().filter(|(_, s)| s == "succeeded").count();
    assert!(succeeded >= 20, "{succeeded} payments went through");
    // Every payment that went through is recorded, however late: raised = their sum.
    let expect = format!("{}.00", succeeded * 5);
    let fund = app.wait_for_fund(|f| f["raised"] == expect.as_str()).await;
    assert_eq!(fund["raised"], expect.as_str());
    assert_eq!(fund["intake"]["state"], "closed");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_cap_never_exceeds_the_target() {
    // Forty donors, all from 127.0.0.1 here: without this the per-address limit sees one.
    let app = Arc::new(
        spawn_app_with_stripe(&[
            ("FUND_TARGET", "100.00"),
            ("FUND_CAP_MODE", "strict"),
            ("RATE_LIMIT_DONATIONS", "off"),
        ])
        .await,
    );
    let (created, refused) = race_to_the_target(Arc::clone(&app)).await;
    assert_eq!(created.len(), 20, "exactly the target's worth was reserved");
    assert_eq!(refused.len(), 20);
    for body in &refused {
        assert!(
            body["code"] == "exceeds_remaining" || body["code"] == "intake_closed",
            "{body}"
        );
        if body["code"] == "exceeds_remaining" {
            assert_eq!(body["remaining"], "0.00", "the refusal names what remains");
        }
    }
    let fund = app.wait_for_fund(|f| f["raised"] == "100.00").await;
    assert_eq!(fund["raised"], "100.00");
    assert_eq!(fund["intake"]["state"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_cap_names_the_remaining_amount_and_expires_reservations() {
    let app = spawn_app_with_stripe(&[
        ("FUND_TARGET", "100.00"),
        ("FUND_CAP_MODE", "strict"),
        ("RESERVATION_TTL", "2s"),
    ])
    .await;
    let (id, pi) = create(&app, "70.00").await;
    let refused = assert_problem(app.donate("40.00").await, 409, "exceeds_remaining").await;
    assert_eq!(refused["remaining"], "30.00");
    // The donor walks away: after the TTL the intent is cancelled and the 70.00 is free again.
    let ls = app.stripe.as_ref().expect("stripe");
    let mut status = String::new();
    for _ in 0..80 {
        status = ls.intent(&pi).await["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "canceled" && app.donation_status(id) == "canceled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "canceled");
    assert_eq!(app.donation_status(id), "canceled");
    let (_, pi2) = create(&app, "100.00").await;
    assert_eq!(ls.confirm(&pi2).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "100.00").await;
    assert_eq!(fund["raised"], "100.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_webhook_is_recovered_by_reconcile() {
    let app = spawn_app_with_stripe(&[]).await;
    let (kept, pi_kept) = create(&app, "12.00").await;
    let ls = app.stripe.as_ref().expect("stripe");
    ls.lose_webhooks().await;
    let (lost, pi_lost) = create(&app, "30.00").await;
    assert_eq!(ls.confirm(&pi_lost).await, "succeeded");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        app.fund().await["raised"],
        "0.00",
        "the webhook never arrived"
    );
    let out = app.cli(&["reconcile"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("recorded {pi_lost}")), "{stdout}");
    assert!(stdout.contains("recorded 1 missed donation"), "{stdout}");
    // The server notices the CLI's write within about a second.
    let fund = app.wait_for_fund(|f| f["raised"] == "30.00").await;
    assert_eq!(fund["raised"], "30.00");
    assert_eq!(app.donation_status(lost), "succeeded");
    assert_eq!(
        app.donation_status(kept),
        "pending",
        "the unpaid one stays pending ({pi_kept})"
    );
    assert!(app.verify().is_ok());
}

/// A refund made in Stripe's dashboard while the webhook endpoint was down: no PaymentIntent
/// changed state, so only Stripe's list of undelivered events tells; reconcile applies it
/// through the webhook's path, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_applies_the_events_stripe_could_not_deliver() {
    let app = spawn_app_with_stripe(&[]).await;
    let (_, pi) = create(&app, "60.00").await;
    let ls = stripe(&app);
    assert_eq!(ls.confirm(&pi).await, "succeeded");
    app.wait_for_fund(|f| f["raised"] == "60.00").await;
    ls.lose_webhooks().await;
    let refund = ls.refund(&pi, 2500).await;
    assert_eq!(refund["status"], "succeeded", "{refund}");
    // The first delivery attempt (about a second later) fails.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        app.fund().await["raised"],
        "60.00",
        "the event never arrived"
    );
    let run = || {
        let out = app.cli(&["reconcile"], &[]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
    };
    let stdout = run();
    assert!(stdout.contains("(charge.refunded)"), "{stdout}");
    // charge.refunded, and refund.created (which changes nothing for a card).
    assert!(
        stdout.contains("1 applied now") || stdout.contains("2 applied now"),
        "{stdout}"
    );
    let fund = app.wait_for_fund(|f| f["raised"] == "35.00").await;
    assert_eq!(fund["raised"], "35.00");
    // Again: listed still, applied no more.
    let stdout = run();
    assert!(stdout.contains("0 applied now"), "{stdout}");
    assert_eq!(app.fund().await["raised"], "35.00");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_refunds_go_through_stripe_and_never_exceed_what_is_left() {
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    let (id, pi) = create(&app, "60.00").await;
    assert_eq!(
        app.stripe.as_ref().expect("stripe").confirm(&pi).await,
        "succeeded"
    );
    app.wait_for_fund(|f| f["raised"] == "60.00").await;
    let path = format!("/api/admin/donations/{id}/refund");
    let resp = app
        .send(
            reqwest::Method::POST,
            &path,
            Some(&admin),
            Some(&json!({ "amount": "25.00", "reason": "asked" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let charge = app.stripe.as_ref().expect("stripe").intent(&pi).await;
    let refunded_at_stripe = charge["latest_charge"]["amount_refunded"]
        .as_i64()
        .or_else(|| charge["charges"]["data"][0]["amount_refunded"].as_i64());
    assert_eq!(refunded_at_stripe, Some(2500));
    assert_eq!(app.fund().await["raised"], "35.00");
    let resp = app
        .send(
            reqwest::Method::POST,
            &path,
            Some(&admin),
            Some(&json!({ "amount": "35.01", "reason": "too much" })),
        )
        .await;
    let problem = assert_problem(resp, 422, "refund_exceeds_remaining").await;
    assert_eq!(problem["refundable"], "35.00");
    assert_eq!(app.fund().await["raised"], "35.00");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_card_giving_is_unavailable_and_a_dead_stripe_leaves_nothing() {
    let app = spawn_app().await;
    assert_problem(app.donate("5.00").await, 503, "payments_unavailable").await;
    // Stripe configured but unreachable: 502 and no pending row left behind.
    let app = spawn_app_with(&[
        ("STRIPE_SECRET_KEY", "sk_test_x"),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_x"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ("STRIPE_API_BASE", "http://127.0.0.1:9"),
    ])
    .await;
    let resp = app
        .client
        .post(format!("{}/api/donations", app.addr))
        .header("Idempotency-Key", "retry-me")
        .json(&json!({ "amount": "5.00", "donor_name": "Ann", "email": "ann@example.org" }))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 502, "payment_provider_error").await;
    assert_eq!(app.count("donations"), 0);
    assert_eq!(
        app.count("idempotency_keys"),
        0,
        "the key is free for a retry"
    );
    // Page-side input checks apply to card gifts: the minimum is 1.00.
    assert_problem(app.donate("0.50").await, 422, "invalid_amount").await;
}
