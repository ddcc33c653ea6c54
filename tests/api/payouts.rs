//! Payout reconciliation against localstripe: a paid payout's transactions matched to the
//! ledger, with each kind of discrepancy reported.

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with_stripe;
use crate::localstripe::event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_payout_is_matched_to_the_ledger_to_the_cent() {
    // localstripe pays out in EUR only.
    let app = spawn_app_with_stripe(&[("FUND_CURRENCY", "EUR")]).await;
    let admin = app.token(Role::Admin).await;
    let ls = app.stripe.as_ref().expect("stripe");
    let create = |amount: &'static str| {
        let app = &app;
        async move {
            let body: Value = app.donate(amount).await.json().await.expect("json");
            let pi = body["client_secret"]
                .as_str()
                .expect("secret")
                .split("_secret_")
                .next()
                .expect("pi")
                .to_owned();
            (body["donation_id"].as_i64().expect("id"), pi)
        }
    };
    // In the ledger but never charged at Stripe (a forged or mistaken success).
    let (ghost, ghost_pi) = create("9.00").await;
    let fake = event(
        "evt_ghost",
        "payment_intent.succeeded",
        json!({
        "id": ghost_pi, "amount": 900, "currency": "eur", "latest_charge": "ch_never_charged",
        "metadata": { "donation_id": ghost.to_string() } }),
    );
    assert_eq!(
        app.deliver(&fake, chrono::Utc::now().timestamp())
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (a, pi_a) = create("50.00").await;
    let (b, pi_b) = create("20.00").await;
    assert_eq!(ls.confirm(&pi_a).await, "succeeded");
    assert_eq!(ls.confirm(&pi_b).await, "succeeded");
    // Charged at Stripe but not one of our donations.
    let stranger: Value = app
        .client
        .post(format!("{}/v1/payment_intents", ls.base))
        .basic_auth(crate::localstripe::SECRET_KEY, Some(""))
        .form(&[("amount", "700"), ("currency", "eur")])
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ls.confirm(stranger["id"].as_str().expect("id")).await,
        "succeeded"
    );
    app.wait_for_fund(|f| f["raised"] == "79.00").await;
    // Refund part of A through the admin API: a refund transaction that matches.
    let resp = app
        .send(
            reqwest::Method::POST,
            &format!("/api/admin/donations/{a}/refund"),
            Some(&admin),
            Some(&json!({ "amount": "5.00", "reason": "asked" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Fees are fetched after success; then make B's fee disagree with Stripe's (0).
    use crowdledger::db::schema::donations;
    use diesel::prelude::*;
    for _ in 0..100 {
        let fee: Option<i64> = donations::table
            .find(b)
            .select(donations::fee_minor)
            .first(&mut app.conn())
            .expect("row");
        if fee.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    diesel::update(donations::table.find(b))
        .set(donations::fee_minor.eq(Some(30)))
        .execute(&mut app.conn())
        .expect("edit");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let payout: Value = app
        .client
        .post(format!("{}/v1/payouts", ls.base))
        .basic_auth(crate::localstripe::SECRET_KEY, Some(""))
        .form(&[("amount", "6200"), ("currency", "eur"), ("status", "paid")])
        .send()
        .await
        .expect("payout")
        .json()
        .await
        .expect("json");
    let po = payout["id"].as_str().expect("po id").to_owned();

    // payout.paid arrives by webhook; the worker reconciles it.
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
    assert_eq!(row["status"], "paid", "{row}");
    assert_eq!(row["amount"], "62.00");
    assert_eq!(row["matched"], 2, "A's charge and A's refund: {row}");
    assert_eq!(row["differences"], 1, "B's fee: {row}");
    assert_eq!(row["missing_in_ledger"], 1, "the stranger's charge: {row}");
    assert_eq!(row["missing_in_stripe"], 1, "the ghost donation: {row}");
    assert_eq!(row["balanced"], false);
    assert_eq!(row["report"]["missing_in_stripe"][0]["donation_id"], ghost);
    assert_eq!(row["report"]["differences"][0]["donation_id"], b);

    // The CLI says the same and exits non-zero because it does not balance.
    let out = app.cli(
        &["reconcile", "payouts", "--payout", &po],
        &[("FUND_CURRENCY", "EUR")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{po}: 2 matched, 1 missing in ledger, 1 missing in Stripe, 1 differences"
        )),
        "{stdout}"
    );
}
