//! Year-end statements a donor can file (issue 24, a defect found by trying it): a late check
//! after the statement was sent gets a corrected statement, exactly once per change; the
//! command prints what it really queued; a year not over is refused without `--force`; the
//! year is split in the fund's time zone.

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::smtp::SmtpSink;

async fn check(app: &TestApp, token: &str, amount: &str, email: &str, day: &str) {
    let body = json!({ "amount": amount, "donor_name": "Ann Lee", "email": email,
        "method": "check", "reference": "1001", "received_on": day, "locale": "en" });
    assert_eq!(app.post_offline(token, &body, None).await.status(), 201);
}

/// Runs `receipts year-end --year YEAR --send` (with `extra` arguments) with the fund's
/// settings `env`.
fn year_end(app: &TestApp, year: &str, extra: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut args = vec!["receipts", "year-end", "--year", year, "--send"];
    args.extend_from_slice(extra);
    let out = app.cli(&args, env);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn statements(sink: &SmtpSink, to: &str) -> Vec<Value> {
    sink.messages()
        .into_iter()
        .filter(|m| m["to"][0] == to)
        .filter(|m| !m["subject"].as_str().unwrap_or_default().contains("CL-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_check_gets_a_corrected_statement_once() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp)]).await;
    let treasurer = app.token(Role::Treasurer).await;
    check(&app, &treasurer, "50.00", "ann@example.org", "2025-06-01").await;
    sink.wait_for(1, 15).await;
    let (ok, text) = year_end(&app, "2025", &[], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("1 statement(s) queued"), "{text}");
    sink.wait_for(2, 15).await;
    // A check dated in 2025 arrives after the statement went out.
    check(&app, &treasurer, "70.00", "ann@example.org", "2025-12-20").await;
    sink.wait_for(3, 15).await;
    let (ok, text) = year_end(&app, "2025", &[], &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1 statement(s) queued (0 new, 1 correction(s)"),
        "{text}"
    );
    sink.wait_for(4, 15).await;
    let sent = statements(&sink, "ann@example.org");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let correction = sent
        .iter()
        .find(|m| m["text"].as_str().is_some_and(|t| t.contains("120.00")))
        .expect("a statement with the new total");
    let body = correction["text"].as_str().unwrap_or_default();
    assert!(body.contains("corrected statement"), "{body}");
    // Nothing changed since: nothing queued, and the command says so.
    let (ok, text) = year_end(&app, "2025", &[], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("0 statement(s) queued"), "{text}");
    assert!(text.contains("1 unchanged"), "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(statements(&sink, "ann@example.org").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_not_over_needs_force_and_the_year_is_the_funds() {
    let la = [("FUND_TIMEZONE", "America/Los_Angeles")];
    let app = spawn_app_with(&la).await;
    let this_year = chrono::Utc::now().format("%Y").to_string();
    let (ok, text) = year_end(&app, &this_year, &[], &la);
    assert!(!ok, "{text}");
    assert!(
        text.contains("not over") && text.contains("--force"),
        "{text}"
    );
    let (ok, text) = year_end(&app, &this_year, &["--force"], &la);
    assert!(ok, "{text}");

    // A card gift at 18:00 on 31 December in California is 02:00 on 1 January in UTC: it
    // belongs to the year it was given in, where the fund is.
    let treasurer = app.token(Role::Treasurer).await;
    check(&app, &treasurer, "5.00", "cy@example.org", "2025-03-01").await;
    {
        use crowdledger::db::schema::donations;
        use diesel::prelude::*;
        let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(2, 0, 0))
            .expect("time");
        diesel::update(donations::table.filter(donations::email.eq("cy@example.org")))
            .set((
                donations::received_on.eq(None::<chrono::NaiveDate>),
                donations::succeeded_at.eq(Some(at)),
            ))
            .execute(&mut app.conn())
            .expect("a card gift's time");
    }
    let dir = tempfile::tempdir().expect("dir");
    let out_dir = dir.path().display().to_string();
    let out = app.cli(
        &["receipts", "year-end", "--year", "2025", "--out", &out_dir],
        &la,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(files, 2, "the gift is in 2025 in Los Angeles");
}
