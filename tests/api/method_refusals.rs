//! Ways to pay that cannot be offered (issue 20's bad input): a `PAYMENT_METHODS` naming an
//! unknown method, or one that cannot charge in the fund's currency, stops `serve` with a
//! message naming it before anything is written; a method the Stripe account has not
//! switched on is refused by Stripe when a gift starts, and the donor hears that it was
//! refused (not that Stripe was unreachable) while the gift leaves no row and no reservation.

use std::time::{Duration, Instant};

use crowdledger::db::schema::{donations, idempotency_keys, ledger_entries};
use diesel::prelude::*;

use crate::helpers::{JWT_SECRET, TestApp, assert_problem, spawn_app_with_stripe};

/// Rows that a gift or a start-up could write.
fn written(app: &TestApp) -> (i64, i64, i64) {
    let mut c = app.conn();
    (
        donations::table.count().get_result(&mut c).expect("count"),
        ledger_entries::table
            .count()
            .get_result(&mut c)
            .expect("count"),
        idempotency_keys::table
            .count()
            .get_result(&mut c)
            .expect("count"),
    )
}

/// Starts `crowdledger serve` on the app's database with `env` and returns what it printed
/// when it stopped; panics when it is still running after 30 s (it should refuse at once).
fn serve_refused(app: &TestApp, env: &[(&str, &str)]) -> String {
    let mut env = env.to_vec();
    env.extend([("BIND_ADDR", "127.0.0.1:0"), ("JWT_SECRET", JWT_SECRET)]);
    let mut child = app
        .cli_command(&["serve"], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(2), "exit status with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_the_fund_cannot_take_stop_the_server_before_it_writes() {
    let app =
        spawn_app_with_stripe(&[("FUND_CURRENCY", "EUR"), ("PAYMENT_METHODS", "card,alipay")])
            .await;
    assert_eq!(app.donate("20.00").await.status(), 201);
    let before = written(&app);
    let raised = app.fund().await["raised"].clone();

    // (currency configured, PAYMENT_METHODS, what the refusal must say)
    let refused: [(&str, &str, &[&str]); 3] = [
        // A method crowdledger does not know.
        (
            "EUR",
            "card,paypal",
            &["PAYMENT_METHODS", "\"paypal\" is not a payment method"],
        ),
        // One the configured currency cannot take: refused before the database is opened.
        (
            "GBP",
            "us_bank_account",
            &["us_bank_account cannot charge in GBP"],
        ),
        // One the stored fund's currency cannot take, though the configured one could: the
        // fund in the database is the truth.
        (
            "USD",
            "card,us_bank_account",
            &[
                "us_bank_account cannot charge in EUR",
                "the fund stored in the database is in EUR",
            ],
        ),
    ];
    for (currency, methods, says) in refused {
        let said = serve_refused(
            &app,
            &[("FUND_CURRENCY", currency), ("PAYMENT_METHODS", methods)],
        );
        for part in says {
            assert!(said.contains(part), "{methods} in {currency}: {said}");
        }
    }

    assert_eq!(written(&app), before, "a refused start wrote");
    assert_eq!(app.fund().await["raised"], raised);
    assert_eq!(app.donate("21.00").await.status(), 201, "the running app");
}

/// The whole target of 100.00, under one Idempotency-Key.
async fn give_all(app: &TestApp) -> reqwest::Response {
    app.client
        .post(format!("{}/api/donations", app.addr))
        .header("Idempotency-Key", "refused-alipay-1")
        .json(&serde_json::json!({
            "amount": "100.00", "donor_name": "Li Wei", "email": "li@example.org",
            "anonymous": false, "locale": "en",
        }))
        .send()
        .await
        .expect("donate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_stripe_has_not_switched_on_is_refused_and_leaves_nothing() {
    let app = spawn_app_with_stripe(&[
        ("FUND_TARGET", "100.00"),
        ("FUND_CAP_MODE", "strict"),
        ("PAYMENT_METHODS", "card,alipay"),
    ])
    .await;
    let ls = app.stripe.as_ref().expect("localstripe");
    let active = ls
        .post_form("/_test/payment_method_types", &[("active", "card,link")])
        .await;
    assert_eq!(active["active"], serde_json::json!(["card", "link"]));
    let before = written(&app);

    let resp = give_all(&app).await;
    let body = assert_problem(resp, 502, "payment_provider_refused").await;
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("refused"), "{detail}");
    assert!(detail.contains("nothing was charged"), "{detail}");
    assert!(!detail.contains("could not be reached"), "{detail}");
    assert_eq!(written(&app), before, "a refused gift left a row");
    let fund = app.fund().await;
    assert_eq!(fund["raised"], "0.00");

    // Nothing is held: once the account offers the method, the whole target can be given,
    // under the same key (it was freed).
    ls.post_form(
        "/_test/payment_method_types",
        &[("active", "card,link,alipay")],
    )
    .await;
    let resp = give_all(&app).await;
    assert_eq!(resp.status(), 201);
}
