//! Receipts and notices through a real SMTP server: once per donation, in the donor's
//! language, both MIME parts, and nothing lost to an SMTP outage.

use std::collections::HashSet;
use std::sync::Arc;

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{gift, spawn_app_with, spawn_app_with_stripe};
use crate::localstripe::event;
use crate::smtp::SmtpSink;

fn offline(amount: &str, name: &str, email: &str, locale: &str) -> Value {
    let mut g = gift(amount);
    g["donor_name"] = json!(name);
    g["email"] = json!(email);
    g["locale"] = json!(locale);
    g
}

fn to(m: &Value) -> String {
    m["to"][0].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_gift_and_a_card_gift_each_get_one_receipt() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with_stripe(&[("SMTP_URL", &url), ("MAIL_RETRY_BASE", "200ms")]).await;
    let treasurer = app.token(Role::Treasurer).await;
    let resp = app
        .post_offline(
            &treasurer,
            &offline("125.50", "Ann Lee", "ann@example.org", "en"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 201);
    let resp = app.donate("40.00").await;
    let body: Value = resp.json().await.expect("json");
    let pi = body["client_secret"]
        .as_str()
        .expect("secret")
        .split("_secret_")
        .next()
        .expect("pi")
        .to_owned();
    assert_eq!(
        app.stripe.as_ref().expect("stripe").confirm(&pi).await,
        "succeeded"
    );

    let msgs = sink.wait_for(2, 15).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let msgs_after = sink.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs_after.len(), 2, "no second copy");
    let ann = msgs
        .iter()
        .find(|m| to(m) == "ann@example.org")
        .expect("Ann's receipt");
    assert_eq!(ann["content_type"], "multipart/alternative");
    assert!(
        ann["text"]
            .as_str()
            .is_some_and(|t| t.contains("125.50 USD")),
        "{ann}"
    );
    assert!(
        ann["html"].as_str().is_some_and(|t| t.contains("125.50")),
        "{ann}"
    );
    assert!(
        ann["subject"]
            .as_str()
            .is_some_and(|s| s.contains("CL-000001")),
        "{ann}"
    );
    assert!(
        ann["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("<outbox-"))
    );
    // The card donor chose Chinese.
    let mei = msgs
        .iter()
        .find(|m| to(m) == "mei@example.org")
        .expect("Mei's receipt");
    assert!(
        mei["text"]
            .as_str()
            .is_some_and(|t| t.contains("40.00 USD") && t.contains("收据")),
        "{mei}"
    );
    assert!(
        mei["html"]
            .as_str()
            .is_some_and(|h| h.contains("lang=\"zh-CN\""))
    );
    let counts: Value = app
        .get_json("/api/admin/outbox", &app.token(Role::Admin).await)
        .await;
    assert_eq!(counts["sent"], 2);
    assert_eq!(counts["queued"], 0);

    // The treasurer's export shows when each receipt went out.
    let csv = crate::reports::get_csv(&app, "/api/reports/donations.csv", &treasurer).await;
    let header = csv.lines().next().expect("header");
    let at = header
        .split(',')
        .position(|c| c == "receipt_sent_at")
        .expect("receipt_sent_at column");
    let rows = crate::reports::rows(&csv);
    assert_eq!(rows.len(), 2, "{csv}");
    for row in &rows {
        let sent = row.get(at).unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(sent).is_ok(),
            "receipt_sent_at of donation {:?}: {sent:?}",
            row.get(0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_duplicate_webhooks_send_one_receipt() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = Arc::new(spawn_app_with_stripe(&[("SMTP_URL", &url)]).await);
    let resp = app.donate("15.00").await;
    let body: Value = resp.json().await.expect("json");
    let id = body["donation_id"].as_i64().expect("id");
    let pi = body["client_secret"]
        .as_str()
        .expect("secret")
        .split("_secret_")
        .next()
        .expect("pi")
        .to_owned();
    let e = event(
        "evt_receipt_dup",
        "payment_intent.succeeded",
        json!({
        "id": pi, "amount": 1500, "amount_received": 1500, "currency": "usd",
        "metadata": { "donation_id": id.to_string() } }),
    );
    let now = chrono::Utc::now().timestamp();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let app = Arc::clone(&app);
        let e = if i % 2 == 0 {
            e.clone()
        } else {
            // Same payment, reported again under another event id (as a retried "succeeded" may be).
            let mut other = e.clone();
            other["id"] = json!(format!("evt_receipt_dup_{i}"));
            other
        };
        tasks.spawn(async move { app.deliver(&e, now).await.status().as_u16() });
    }
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.expect("task"), 200);
    }
    let msgs = sink.wait_for(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 1, "{msgs:?}");
    assert_eq!(app.fund().await["raised"], "15.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_delays_receipts_and_loses_none() {
    let mut sink = SmtpSink::reserve();
    let url = sink.url();
    let app = Arc::new(spawn_app_with(&[("SMTP_URL", &url), ("MAIL_RETRY_BASE", "200ms")]).await);
    let treasurer = Arc::new(app.token(Role::Treasurer).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (app, treasurer) = (Arc::clone(&app), Arc::clone(&treasurer));
        tasks.spawn(async move {
            let g = offline(
                "10.00",
                &format!("Donor {i}"),
                &format!("donor{i}@example.org"),
                "en",
            );
            app.post_offline(&treasurer, &g, None)
                .await
                .status()
                .as_u16()
        });
    }
    while let Some(s) = tasks.join_next().await {
        assert_eq!(
            s.expect("task"),
            201,
            "gifts are recorded while mail is down"
        );
    }
    assert_eq!(app.fund().await["raised"], "200.00");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let retrying: Value = app
        .get_json("/api/admin/outbox", &app.token(Role::Admin).await)
        .await;
    assert_eq!(retrying["sent"], 0);
    assert_eq!(retrying["queued"], 20);
    assert!(
        retrying["retrying"].as_i64().is_some_and(|n| n > 0),
        "{retrying}"
    );

    sink.listen().await;
    let back = std::time::Instant::now();
    let msgs = sink.wait_for(20, 30).await;
    let caught_up = back.elapsed();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let msgs_after = sink.messages();
    println!(
        "smtp outage: 20 gifts recorded (201) while SMTP was down; outbox then: {retrying}; \
         {} receipts delivered {} ms after the server came up; {} after 1.5 s more",
        msgs.len(),
        caught_up.as_millis(),
        msgs_after.len()
    );
    assert_eq!(msgs.len(), 20);
    assert_eq!(msgs_after.len(), 20, "each receipt once");
    let recipients: HashSet<String> = msgs.iter().map(to).collect();
    assert_eq!(recipients.len(), 20);
    let ids: HashSet<String> = msgs
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_donors_get_chinese_and_names_are_escaped() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &url)]).await;
    let treasurer = app.token(Role::Treasurer).await;
    let g = offline(
        "88.00",
        "<script>alert('x')</script>陈美",
        "chen@example.org",
        "zh-CN",
    );
    assert_eq!(app.post_offline(&treasurer, &g, None).await.status(), 201);
    let msgs = sink.wait_for(1, 10).await;
    let m = &msgs[0];
    let html = m["html"].as_str().expect("html part");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(html.contains("陈美"));
    assert!(
        m["subject"].as_str().is_some_and(|s| s.contains("收据")),
        "{m}"
    );
    assert!(m["text"].as_str().is_some_and(|t| t.contains("88.00 USD")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaching_the_target_tells_the_admins_and_treasurers() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &url), ("FUND_TARGET", "100.00")]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;
    assert_eq!(
        app.add_period(&admin, "August 2020", "2020-08-01", "2020-08-31", "60.00")
            .await
            .status(),
        201
    );
    // No email on the gift: the only message is the notice.
    assert_eq!(
        app.post_offline(&treasurer, &gift("100.00"), None)
            .await
            .status(),
        201
    );
    let msgs = sink.wait_for(2, 10).await;
    assert_eq!(msgs.len(), 2, "one per staff member: {msgs:?}");
    for m in &msgs {
        assert!(
            to(m).starts_with("admin-") || to(m).starts_with("treasurer-"),
            "{m}"
        );
        let text = m["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("100.00") && text.contains("August 2020") && text.contains("60.00"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_end_statements_group_each_donors_gifts() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &url)]).await;
    let treasurer = app.token(Role::Treasurer).await;
    for (amount, email, day) in [
        ("10.00", "ann@example.org", "2020-03-01"),
        ("15.50", "ann@example.org", "2020-09-01"),
        ("99.00", "ann@example.org", "2021-01-02"),
        ("20.00", "bo@example.org", "2020-05-05"),
    ] {
        let mut g = offline(amount, "Donor", email, "en");
        g["received_on"] = json!(day);
        assert_eq!(app.post_offline(&treasurer, &g, None).await.status(), 201);
    }
    let _ = sink.wait_for(4, 10).await;
    let dir = tempfile::tempdir().expect("dir");
    let out_dir = dir.path().display().to_string();
    let run = |send: bool| {
        let args = if send {
            vec!["receipts", "year-end", "--year", "2020", "--send"]
        } else {
            vec![
                "receipts",
                "year-end",
                "--year",
                "2020",
                "--out",
                out_dir.as_str(),
            ]
        };
        app.cli(&args, &[])
    };
    let out = run(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .collect();
    assert_eq!(
        files.len(),
        4,
        "a text and an HTML statement for each of two donors"
    );
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = sink.wait_for(6, 15).await;
    let statements: Vec<&Value> = msgs
        .iter()
        .filter(|m| !m["subject"].as_str().unwrap_or_default().contains("CL-"))
        .collect();
    assert_eq!(statements.len(), 2, "{msgs:?}");
    let ann = statements
        .iter()
        .find(|m| to(m) == "ann@example.org")
        .expect("Ann's statement");
    let text = ann["text"].as_str().unwrap_or_default();
    assert!(text.contains("25.50"), "2020 total for Ann: {text}");
    assert!(!text.contains("99.00"), "2021 gift left out: {text}");
    // Sending twice queues nothing new.
    assert!(run(true).status.success());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_the_outbox_and_retry_what_gave_up() {
    // No SMTP_URL: mail stays queued, nothing is marked sent.
    let app = spawn_app_with(&[]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;
    for i in 0..3 {
        let g = offline("5.00", "Donor", &format!("d{i}@example.org"), "en");
        assert_eq!(app.post_offline(&treasurer, &g, None).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let counts: Value = app.get_json("/api/admin/outbox", &admin).await;
    assert_eq!(
        counts,
        json!({ "queued": 3, "retrying": 0, "failed": 0, "sent": 0 })
    );
    // Two rows that a mail server refused for good on their twelfth attempt.
    use diesel::connection::SimpleConnection;
    app.conn()
        .batch_execute(
            "UPDATE outbox SET attempts = 12, last_error = '550 refused', failed_at = created_at \
             WHERE id <= 2",
        )
        .expect("update");
    let counts: Value = app.get_json("/api/admin/outbox", &admin).await;
    assert_eq!(counts["failed"], 2);
    assert_eq!(counts["queued"], 1);
    let resp = app
        .send(
            reqwest::Method::POST,
            "/api/admin/outbox/retry",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["retried"], 2);
    assert_eq!(body["outbox"]["failed"], 0);
    assert_eq!(body["outbox"]["queued"], 3);
    // Treasurers may not.
    let resp = app
        .send(
            reqwest::Method::POST,
            "/api/admin/outbox/retry",
            Some(&treasurer),
            None,
        )
        .await;
    assert_eq!(resp.status(), 403);
}
