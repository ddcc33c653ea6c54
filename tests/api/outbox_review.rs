//! Issue 18, items 5 and 9: the outbox under several instances, a slow mail server and an
//! outage longer than the retry schedule; the target notice as one row per recipient; login
//! limits shared by the instances of one PostgreSQL database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crowdledger::auth::{Email, Role};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, engine_is_postgres, gift, spawn_app_with};
use crate::smtp::SmtpSink;

/// One number from the app's database (`SELECT ... AS n`).
fn scalar(app: &TestApp, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut app.conn())
        .expect("scalar query")
        .n
}

/// How many messages each recipient got.
fn per_recipient(msgs: &[Value]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in msgs {
        for to in m["to"].as_array().into_iter().flatten() {
            *out.entry(to.as_str().unwrap_or_default().to_owned())
                .or_insert(0) += 1;
        }
    }
    out
}

fn offline_to(email: &str) -> Value {
    let mut g = gift("10.00");
    g["email"] = json!(email);
    g
}

/// `receipts` receipts queued by an instance without SMTP, then drained by two instances
/// sharing one mail server that takes `delay` to accept each message; every receipt must
/// arrive exactly once. `lease` is `MAIL_LEASE` (unset: the default).
async fn two_instances_behind_a_slow_server(
    delay: Duration,
    receipts: usize,
    lease: Option<&str>,
    settle: Duration,
) {
    let sink = SmtpSink::start_slow(delay).await;
    // The recorder has no SMTP_URL: receipts stay queued, so the mailers below find them all
    // due at once and one claim takes a whole batch.
    let recorder = spawn_app_with(&[]).await;
    let treasurer = recorder.token(Role::Treasurer).await;
    for i in 0..receipts {
        let resp = recorder
            .post_offline(
                &treasurer,
                &offline_to(&format!("donor{i}@example.org")),
                None,
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let db = recorder.database_url();
    let smtp = sink.url();
    let mut env = vec![
        ("DATABASE_URL", db.as_str()),
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_RETRY_BASE", "200ms"),
    ];
    if let Some(l) = lease {
        env.push(("MAIL_LEASE", l));
    }
    let a = spawn_app_with(&env).await;
    let b = spawn_app_with(&env).await;
    let started = Instant::now();
    let limit = u64::try_from(delay.as_millis()).expect("delay")
        * u64::try_from(receipts).expect("count")
        / 1000
        + 30;
    let _ = sink.wait_for(receipts, limit).await;
    // A row taken again by the other instance would be sent within this.
    tokio::time::sleep(settle).await;
    let msgs = sink.messages();
    let counts = per_recipient(&msgs);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "slow SMTP ({} ms a message), two instances: {} messages for {receipts} receipts in {} ms",
        delay.as_millis(),
        msgs.len(),
        started.elapsed().as_millis()
    );
    assert!(
        twice.is_empty(),
        "receipts sent more than once: {twice:?} ({} messages for {receipts} receipts)",
        msgs.len()
    );
    assert_eq!(counts.len(), receipts, "every receipt arrived");
    assert_eq!(
        scalar(
            &recorder,
            "SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL"
        ),
        i64::try_from(receipts).expect("count")
    );
    if lease.is_some() {
        // All were due at once, so one claim took them all; rows sent under a second claim
        // were taken over when that first claim's lease ran out, and skipped by its holder.
        assert!(
            scalar(
                &recorder,
                "SELECT COUNT(DISTINCT claim_token) AS n FROM outbox WHERE sent_at IS NOT NULL"
            ) >= 2,
            "rows were taken over from the slow claim"
        );
    }
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_and_a_slow_mail_server_send_each_receipt_once() {
    // One instance's claim of 12 rows takes 4.8 s to send, more than twice the 2 s lease.
    two_instances_behind_a_slow_server(
        Duration::from_millis(400),
        12,
        Some("2s"),
        Duration::from_secs(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retry_schedule_parks_no_receipt() {
    let mut sink = SmtpSink::reserve();
    let url = sink.url();
    // The schedule compressed: 1 ms doubling up to 100 ms stands for 2 s doubling up to
    // 10 minutes; twelve attempts used to be the end of it.
    let app = spawn_app_with(&[
        ("SMTP_URL", &url),
        ("MAIL_RETRY_BASE", "1ms"),
        ("MAIL_RETRY_MAX", "100ms"),
    ])
    .await;
    let treasurer = app.token(Role::Treasurer).await;
    let admin = app.token(Role::Admin).await;
    for email in [
        "ann@example.org",
        "bo@example.org",
        "gone+reject@example.org",
    ] {
        let resp = app.post_offline(&treasurer, &offline_to(email), None).await;
        assert_eq!(resp.status(), 201);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (counts, least) = loop {
        let counts: Value = app.get_json("/api/admin/outbox", &admin).await;
        let least = scalar(
            &app,
            "SELECT CAST(COALESCE(MIN(attempts), 0) AS BIGINT) AS n FROM outbox WHERE sent_at IS NULL",
        );
        if counts["failed"] != 0 || least > 14 || Instant::now() > deadline {
            break (counts, least);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        counts["failed"], 0,
        "the outage parked receipts as failed: {counts} (fewest attempts {least})"
    );
    assert!(
        least > 14,
        "every row still retried: fewest attempts {least}"
    );
    assert_eq!(
        counts,
        json!({ "queued": 3, "retrying": 3, "failed": 0, "sent": 0 })
    );

    sink.listen().await;
    let _ = sink.wait_for(2, 20).await;
    // The refused address is now answered 550, a permanent refusal on its 15th attempt or
    // later: that row, and only that one, gives up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let counts: Value = app.get_json("/api/admin/outbox", &admin).await;
        if counts["failed"] == 1 || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = per_recipient(&sink.messages());
    assert_eq!(got.get("ann@example.org"), Some(&1), "{got:?}");
    assert_eq!(got.get("bo@example.org"), Some(&1), "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        counts,
        json!({ "queued": 0, "retrying": 0, "failed": 1, "sent": 2 })
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND last_error LIKE '%550%'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_notice_is_one_outbox_row_per_recipient() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[
        ("SMTP_URL", &url),
        ("FUND_TARGET", "100.00"),
        ("MAIL_RETRY_BASE", "50ms"),
    ])
    .await;
    let token = app.token(Role::Treasurer).await;
    let admin = app.user(Role::Admin);
    let treasurer = app.user(Role::Treasurer);
    // Last in id order: the old single row reached it after the other two, every time.
    crowdledger::auth::add_user(
        &mut app.conn(),
        &Email::parse("gone+reject@example.org").expect("email"),
        Role::Admin,
        PASSWORD,
    )
    .expect("user");
    // No donor email: the only mail is the notice.
    assert_eq!(
        app.post_offline(&token, &gift("100.00"), None)
            .await
            .status(),
        201
    );
    let _ = sink.wait_for(3, 10).await;
    // The refused recipient is retried meanwhile (50 ms, doubling).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = per_recipient(&sink.messages());
    for who in [&admin, &treasurer] {
        assert_eq!(got.get(who.as_str()), Some(&1), "{who}: {got:?}");
    }
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'intake_closed'"
        ),
        4,
        "one row per staff member"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'intake_closed' AND sent_at IS NULL AND last_error LIKE '%550%'"
        ),
        1,
        "only the refused recipient's row is left"
    );
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/auth/login", app.addr))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request")
}

/// Wrong-password logins alternating between `a` and `b`; how many were looked at (401)
/// before the limit answered 429.
async fn allowed_across(a: &TestApp, b: &TestApp, emails: &[&str], tries: usize) -> usize {
    let mut allowed = 0;
    for i in 0..tries {
        let app = if i % 2 == 0 { a } else { b };
        let resp = login(app, emails[i % emails.len()], "guess-guess-guess").await;
        match resp.status().as_u16() {
            401 => allowed += 1,
            429 => {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                assert!(wait.is_some_and(|w| w >= 1), "Retry-After {wait:?}");
            }
            other => panic!("login answered {other}"),
        }
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_are_shared_by_the_instances_of_one_postgresql_database() {
    // Per account: 3 a quarter hour, whatever the address and the instance.
    let env = [
        ("RATE_LIMIT_LOGIN_ACCOUNT", "3/15m"),
        ("RATE_LIMIT_LOGIN", "off"),
    ];
    let a = spawn_app_with(&env).await;
    let db = a.database_url();
    let mut env_b = env.to_vec();
    env_b.push(("DATABASE_URL", db.as_str()));
    let b = spawn_app_with(&env_b).await;
    let victim = a.user(Role::Admin);
    let allowed = allowed_across(&a, &b, &[&victim], 10).await;
    if engine_is_postgres() {
        assert_eq!(allowed, 3, "two instances together allow one budget");
        assert_eq!(
            scalar(
                &a,
                "SELECT COUNT(*) AS n FROM login_limits WHERE key LIKE 'account:%'"
            ),
            1,
            "the account's bucket is kept in the database"
        );
        // The right password is refused too, on either instance.
        for app in [&a, &b] {
            assert_eq!(login(app, &victim, PASSWORD).await.status(), 429);
        }
    } else {
        // SQLite: one machine, limits per instance (RELIABILITY.md says so).
        assert_eq!(allowed, 6, "each instance allows its own budget");
    }

    // Per address: 2 a minute.
    let env = [
        ("RATE_LIMIT_LOGIN_ACCOUNT", "off"),
        ("RATE_LIMIT_LOGIN", "2/min"),
    ];
    let c = spawn_app_with(&env).await;
    let db = c.database_url();
    let mut env_d = env.to_vec();
    env_d.push(("DATABASE_URL", db.as_str()));
    let d = spawn_app_with(&env_d).await;
    let allowed = allowed_across(&c, &d, &["x@example.org", "y@example.org"], 8).await;
    assert_eq!(allowed, if engine_is_postgres() { 2 } else { 4 });
}
