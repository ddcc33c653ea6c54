//! The tax statement the law asks for (issue 24): `TAX_STATUS=not_deductible` on the donor
//! page and every receipt (IRC §6113); `501c3` gives the "no goods or services" sentence on
//! receipts of 250.00 or more only (IRC §170(f)(8)); both languages, through the real mailer.

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::smtp::SmtpSink;

async fn gift(app: &TestApp, token: &str, amount: &str, email: &str, locale: &str) {
    let body = json!({ "amount": amount, "donor_name": "Ann Lee", "email": email,
        "method": "check", "reference": "1001", "locale": locale });
    assert_eq!(app.post_offline(token, &body, None).await.status(), 201);
}

fn mail_to<'a>(mails: &'a [Value], to: &str) -> &'a str {
    mails
        .iter()
        .find(|m| m["to"][0] == to)
        .and_then(|m| m["text"].as_str())
        .unwrap_or_else(|| panic!("no email to {to}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_501c3_acknowledges_receipts_from_250() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[
        ("SMTP_URL", &smtp),
        ("TAX_STATUS", "501c3"),
        ("ASSOCIATION_TAX_ID", "12-3456789"),
    ])
    .await;
    let t = app.token(Role::Treasurer).await;
    gift(&app, &t, "249.99", "small@example.org", "en").await;
    gift(&app, &t, "250.00", "big@example.org", "en").await;
    gift(&app, &t, "300.00", "zh@example.org", "zh-CN").await;
    let mails = sink.wait_for(3, 15).await;
    assert!(!mail_to(&mails, "small@example.org").contains("No goods or services"));
    assert!(mail_to(&mails, "big@example.org").contains("No goods or services"));
    assert!(mail_to(&mails, "zh@example.org").contains("本次捐款并未换取任何商品或服务"));
    let (_, html) = page(&app, "/?lang=en").await;
    assert!(
        !html.contains("tax-statement"),
        "a 501(c)(3) page says nothing of it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_deductible_is_said_on_the_page_and_every_receipt() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[
        ("SMTP_URL", &smtp),
        ("TAX_STATUS", "not_deductible"),
        ("ASSOCIATION_NAME", "Chinatown Community Association"),
    ])
    .await;
    let t = app.token(Role::Treasurer).await;
    gift(&app, &t, "5.00", "en@example.org", "en").await;
    gift(&app, &t, "5.00", "zh@example.org", "zh-CN").await;
    let mails = sink.wait_for(2, 15).await;
    let en = mail_to(&mails, "en@example.org");
    assert!(
        en.contains("Chinatown Community Association are not deductible"),
        "{en}"
    );
    assert!(!en.contains("No goods or services"), "{en}");
    assert!(mail_to(&mails, "zh@example.org").contains("不能作为慈善捐款"));
    for (lang, phrase) in [("en", "are not deductible"), ("zh-CN", "不能作为慈善捐款")] {
        let (_, html) = page(&app, &format!("/?lang={lang}")).await;
        assert!(
            html.contains("id=\"tax-statement\"") && html.contains(phrase),
            "{lang}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_nothing_is_said_of_tax() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp)]).await;
    let t = app.token(Role::Treasurer).await;
    gift(&app, &t, "500.00", "ann@example.org", "en").await;
    let mails = sink.wait_for(1, 15).await;
    let text = mail_to(&mails, "ann@example.org");
    assert!(
        !text.contains("No goods") && !text.contains("not deductible"),
        "{text}"
    );
    // A 501(c)(3) without its EIN does not start.
    let out = app.cli(&["verify"], &[("TAX_STATUS", "501c3")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ASSOCIATION_TAX_ID"));
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app
        .client
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .expect("page");
    (resp.status().as_u16(), resp.text().await.expect("html"))
}
