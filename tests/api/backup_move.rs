//! The move (issue 22): `crowdledger copy --to` a database of the other engine, taken from a
//! fund with card gifts, a card refund, a lost dispute, offline gifts, an offline refund and
//! periods; then the target serves that fund: same raised and count, the staff can log in, no
//! receipt is sent again, and the next gift extends the same chain.

use std::time::Duration;

use crowdledger::auth::Role;
use crowdledger::db::schema;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::backup::{copy_to, other_engine_database};
use crate::helpers::{TestApp, login, spawn_app_with_stripe, spawn_on, url_text};
use crate::localstripe::event;
use crate::smtp::SmtpSink;

/// A card gift confirmed at localstripe and recorded; returns (donation id, intent id).
async fn card_gift(app: &TestApp, amount: &str) -> (i64, String) {
    let resp = app.donate(amount).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    let pi = body["client_secret"].as_str().expect("secret");
    let pi = pi.split("_secret_").next().expect("pi").to_owned();
    let stripe = app.stripe.as_ref().expect("stripe");
    assert_eq!(stripe.confirm(&pi).await, "succeeded");
    (body["donation_id"].as_i64().expect("id"), pi)
}

async fn refund(app: &TestApp, admin: &str, id: i64, amount: &str) {
    let resp = app
        .send(
            reqwest::Method::POST,
            &format!("/api/admin/donations/{id}/refund"),
            Some(admin),
            Some(&json!({ "amount": amount, "reason": "asked" })),
        )
        .await;
    assert_eq!(resp.status(), 200, "refund of {amount} on {id}");
}

fn head(app: &TestApp) -> (i64, String) {
    schema::funds::table
        .select((schema::funds::ledger_seq, schema::funds::ledger_head))
        .first(&mut app.conn())
        .expect("fund")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_fund_serves_from_the_other_engine_as_it_was() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let env = [
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_RETRY_BASE", "200ms"),
        ("RATE_LIMIT_DONATIONS", "off"),
    ];
    let app = spawn_app_with_stripe(&env).await;
    let email = app.user(Role::Admin);
    let admin = login(&app, &email).await;
    for (label, from, to, budget) in [
        ("August 2020", "2020-08-01", "2020-08-31", "100.00"),
        ("September 2020", "2020-09-01", "2020-09-30", "400.00"),
    ] {
        let resp = app.add_period(&admin, label, from, to, budget).await;
        assert_eq!(resp.status(), 201, "{label}");
    }
    let (refunded, _) = card_gift(&app, "60.00").await;
    let (disputed, disputed_pi) = card_gift(&app, "40.00").await;
    card_gift(&app, "25.50").await;
    app.wait_for_fund(|f| f["raised"] == "125.50").await;
    refund(&app, &admin, refunded, "20.00").await;
    let lost = event(
        "evt_move_dispute",
        "charge.dispute.closed",
        json!({ "id": "dp_move", "charge": format!("ch_move_{disputed}"),
                "payment_intent": disputed_pi, "amount": 4000, "status": "lost" }),
    );
    let now = chrono::Utc::now().timestamp();
    assert_eq!(app.deliver(&lost, now).await.status(), 200);
    for (amount, name, mail) in [
        ("100.00", "Ann Lee", "ann@example.org"),
        ("250.00", "陈美", "chen@example.org"),
    ] {
        let body = json!({ "amount": amount, "donor_name": name, "email": mail,
            "method": "check", "reference": "1001", "received_on": "2020-08-03" });
        assert_eq!(app.post_offline(&admin, &body, None).await.status(), 201);
    }
    let offline_id = app.count("donations");
    refund(&app, &admin, offline_id, "50.00").await;
    // 125.50 card - 20 refunded - 40 lost + 350 offline - 50 refunded.
    let fund = app.wait_for_fund(|f| f["raised"] == "365.50").await;
    let count = fund["donation_count"].clone();
    // Every receipt and notice is sent before the move.
    let queued = app.count("outbox");
    let sent = sink
        .wait_for(usize::try_from(queued).expect("count"), 30)
        .await
        .len();
    assert_eq!(i64::try_from(sent).expect("count"), queued, "all sent");
    let (seq, hash) = head(&app);

    let (target, keep) = other_engine_database();
    let (ok, text) = copy_to(&app, &url_text(&target));
    assert!(ok, "copy: {text}");
    assert!(
        text.contains(&format!("target: head seq {seq} hash {hash}")),
        "{text}"
    );

    // The target serves the same fund; its mailer finds nothing left to send.
    let moved_sink = SmtpSink::start().await;
    let moved_smtp = moved_sink.url();
    let moved_env = [
        ("SMTP_URL", moved_smtp.as_str()),
        ("RATE_LIMIT_DONATIONS", "off"),
    ];
    let moved = spawn_on(target, keep, "whsec_moved".into(), &moved_env, None).await;
    // Staff keep their passwords and second factors (a recovery code signs in below).
    moved.carry_second_factors(&app);
    let fund = moved.fund().await;
    assert_eq!(fund["raised"], "365.50", "{fund}");
    assert_eq!(fund["donation_count"], count, "{fund}");
    assert_eq!(fund["periods"].as_array().map(Vec::len), Some(2), "{fund}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        moved_sink.messages().is_empty(),
        "receipts sent again: {:?}",
        moved_sink.messages()
    );

    // The next gift extends the same chain and gets its one receipt.
    let admin = login(&moved, &email).await;
    let body = json!({ "amount": "5.00", "donor_name": "Bo Wong", "email": "bo@example.org",
        "method": "cash", "received_on": "2020-09-02" });
    assert_eq!(moved.post_offline(&admin, &body, None).await.status(), 201);
    let (prev,): (String,) = schema::ledger_entries::table
        .filter(schema::ledger_entries::seq.eq(seq + 1))
        .select((schema::ledger_entries::prev_hash,))
        .first(&mut moved.conn())
        .expect("the next entry");
    assert_eq!(prev, hash, "the new entry follows the copied head");
    assert_eq!(moved_sink.wait_for(1, 15).await.len(), 1);
    assert_eq!(moved.fund().await["raised"], "370.50");
    let report = moved.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
}
