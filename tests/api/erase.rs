//! Erase on request (issue 24): the donor's name and address leave the donations, the outbox
//! and their codes; amounts, the ledger and every total stay; the donor can no longer look
//! anything up; the audit says an erasure happened without the erased data; refused while a
//! gift is pending; the CLI asks for --confirm.

use crowdledger::auth::Role;
use crowdledger::db::schema::{audit_log, donations, lookup_codes, outbox};
use diesel::prelude::*;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app_with, spawn_app_with_stripe};
use crate::smtp::SmtpSink;

async fn gift(app: &TestApp, token: &str, amount: &str, email: &str) {
    let name = if email.to_lowercase().starts_with("ann") {
        "Ann Lee"
    } else {
        "Bo Wong"
    };
    let body = json!({ "amount": amount, "donor_name": name, "email": email,
        "method": "check", "reference": "1001", "received_on": "2025-05-05" });
    assert_eq!(app.post_offline(token, &body, None).await.status(), 201);
}

async fn erase(app: &TestApp, token: &str, email: &str) -> reqwest::Response {
    app.send(
        reqwest::Method::POST,
        "/api/admin/donors/erase",
        Some(token),
        Some(&json!({ "email": email })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_donor_leaves_amounts_and_the_ledger_whole() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp)]).await;
    let admin = app.token(Role::Admin).await;
    gift(&app, &admin, "50.00", "ann@example.org").await;
    gift(&app, &admin, "70.00", "Ann@Example.org").await;
    gift(&app, &admin, "9.00", "bo@example.org").await;
    sink.wait_for(3, 15).await;
    // A code asked before the erasure.
    let resp = app
        .client
        .post(format!("{}/receipts/code", app.addr))
        .form(&[("email", "ann@example.org")])
        .send()
        .await
        .expect("code");
    assert_eq!(resp.status(), 200);
    let before = app.fund().await;
    let audit_before = app.count("audit_log");

    // The CLI asks first, then erases.
    let out = app.cli(&["donor", "erase", "--email", "ann@example.org"], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("2 gift(s)") && text.contains("--confirm"),
        "{text}"
    );
    assert_eq!(
        app.count("audit_log"),
        audit_before,
        "nothing erased without --confirm"
    );
    let treasurer = app.token(Role::Treasurer).await;
    assert_problem(
        erase(&app, &treasurer, "ann@example.org").await,
        403,
        "forbidden",
    )
    .await;
    let resp = erase(&app, &admin, " ANN@example.org ").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.expect("json")["erased"],
        2
    );

    let mut conn = app.conn();
    let left: Vec<(String, Option<String>)> = donations::table
        .filter(donations::id.le(2))
        .select((donations::donor_name, donations::email))
        .load(&mut conn)
        .expect("rows");
    assert!(
        left.iter().all(|(n, e)| n.is_empty() && e.is_none()),
        "{left:?}"
    );
    let bodies: Vec<String> = outbox::table
        .select(outbox::payload)
        .load(&mut conn)
        .expect("outbox");
    assert!(
        !bodies
            .iter()
            .any(|b| b.to_lowercase().contains("ann@example.org")),
        "{bodies:?}"
    );
    let codes: i64 = lookup_codes::table
        .filter(lookup_codes::email.eq("ann@example.org"))
        .count()
        .get_result(&mut conn)
        .expect("codes");
    assert_eq!(codes, 0);
    let bo: Option<String> = donations::table
        .find(3)
        .select(donations::email)
        .first(&mut conn)
        .expect("bo");
    assert_eq!(
        bo.as_deref(),
        Some("bo@example.org"),
        "another donor is untouched"
    );
    // Totals and the ledger are as they were.
    let after = app.fund().await;
    assert_eq!(after["raised"], before["raised"]);
    assert_eq!(after["donation_count"], before["donation_count"]);
    assert!(app.verify().is_ok());
    // The audit says it happened, not whom.
    let (actor, detail): (String, String) = audit_log::table
        .filter(audit_log::action.eq("donor.erased"))
        .select((audit_log::actor, audit_log::detail))
        .first(&mut conn)
        .expect("audit");
    assert!(actor.starts_with("admin-"), "{actor}");
    assert!(
        detail.contains("\"gifts\":2") && !detail.contains("ann"),
        "{detail}"
    );
    let reports = crate::reports::get_csv(&app, "/api/reports/donations.csv", &treasurer).await;
    assert!(!reports.to_lowercase().contains("ann"), "{reports}");
    // The donor can no longer look anything up: no code is sent. (Every email queued before
    // is out first, so a late receipt is not counted as a code.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.count("outbox WHERE sent_at IS NULL AND failed_at IS NULL") > 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sent = sink.messages().len();
    app.client
        .post(format!("{}/receipts/code", app.addr))
        .form(&[("email", "ann@example.org")])
        .send()
        .await
        .expect("code");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(sink.messages().len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donor_with_a_pending_gift_is_not_erased() {
    let app = spawn_app_with_stripe(&[]).await;
    let admin = app.token(Role::Admin).await;
    assert_eq!(app.donate("20.00").await.status(), 201);
    let problem = assert_problem(
        erase(&app, &admin, "mei@example.org").await,
        409,
        "donor_has_open_gifts",
    )
    .await;
    assert_eq!(problem["donation_id"], 1);
    let email: Option<String> = donations::table
        .find(1)
        .select(donations::email)
        .first(&mut app.conn())
        .expect("row");
    assert_eq!(email.as_deref(), Some("mei@example.org"), "nothing written");
    assert_problem(
        erase(&app, &admin, "not an email").await,
        422,
        "invalid_request",
    )
    .await;
}
