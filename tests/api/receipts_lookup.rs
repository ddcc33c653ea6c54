//! Donors find their own gifts (issue 24): a code by email (aiosmtpd catches it), the same
//! answer for an address that never gave, five tries per code, a link whose GET spends
//! nothing, resends limited per gift and day, a year's statement with an exact total.

use std::time::{Duration, Instant};

use crowdledger::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};
use crate::smtp::SmtpSink;

/// A client that does not follow redirects and keeps no cookies (the test carries them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn post_form(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = client().post(format!("{}{path}", app.addr)).form(form);
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    req.send().await.expect("post")
}

async fn get_page(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", app.addr));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    req.send().await.expect("get")
}

/// The session cookie a 303 sets.
fn cookie_of(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "signed in with a redirect");
    let set = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("name=value").to_owned()
}

/// The code and link of every code email to `to` (in no order).
fn code_mails(sink: &SmtpSink, to: &str) -> Vec<(String, String)> {
    sink.messages()
        .into_iter()
        .filter(|m| m["to"][0] == to)
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .filter(|t| t.contains("/receipts/link?t="))
        .map(|text| {
            let code = text
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .expect("six digits")
                .to_owned();
            let link = text
                .split_whitespace()
                .find(|w| w.contains("/receipts/link?t="))
                .expect("link")
                .to_owned();
            (code, link)
        })
        .collect()
}

/// The only code email to `to`.
fn code_mail(sink: &SmtpSink, to: &str) -> (String, String) {
    let all = code_mails(sink, to);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

async fn gift(app: &TestApp, token: &str, amount: &str, email: &str, day: &str) {
    let body = json!({ "amount": amount, "donor_name": "Ann Lee", "email": email,
        "method": "check", "reference": "1001", "received_on": day });
    assert_eq!(app.post_offline(token, &body, None).await.status(), 201);
}

async fn ask_code(app: &TestApp, email: &str) -> String {
    let resp = post_form(
        app,
        "/receipts/code",
        &[("email", email), ("lang", "en")],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donor_finds_resends_and_prints_their_own_gifts() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp), ("MAIL_RETRY_BASE", "200ms")]).await;
    let admin = app.token(Role::Admin).await;
    gift(&app, &admin, "50.00", "ann@example.org", "2025-12-31").await;
    gift(&app, &admin, "70.25", "Ann@Example.org", "2026-01-05").await;
    gift(&app, &admin, "9.00", "bo@example.org", "2026-01-06").await;
    sink.wait_for(3, 15).await;

    // The page works without JavaScript: a form that posts.
    let page = get_page(&app, "/receipts?lang=zh-CN", None)
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("action=\"/receipts/code\"") && page.contains("lang=\"zh-CN\""),
        "{page}"
    );

    // Same answer for an address that gave and one that never did; only one gets a code.
    let known = ask_code(&app, "ANN@example.org").await;
    let unknown = ask_code(&app, "nobody@example.org").await;
    assert_eq!(
        known.replace("ann@example.org", "X"),
        unknown.replace("nobody@example.org", "X")
    );
    sink.wait_for(4, 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sink
            .messages()
            .iter()
            .any(|m| m["to"][0] == "nobody@example.org")
    );
    let (code, link) = code_mail(&sink, "ann@example.org");

    // A wrong code, then the right one: signed in.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let resp = post_form(
        &app,
        "/receipts/verify",
        &[
            ("email", "ann@example.org"),
            ("code", wrong),
            ("lang", "en"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("page").contains("not right"));
    let resp = post_form(
        &app,
        "/receipts/verify",
        &[
            ("email", "ann@example.org"),
            ("code", &code),
            ("lang", "en"),
        ],
        None,
    )
    .await;
    let cookie = cookie_of(&resp);
    // The code works once.
    let again = post_form(
        &app,
        "/receipts/verify",
        &[
            ("email", "ann@example.org"),
            ("code", &code),
            ("lang", "en"),
        ],
        None,
    )
    .await;
    assert_eq!(again.status(), 200, "not signed in twice");

    let page = get_page(&app, "/receipts/gifts?lang=en", Some(&cookie))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("50.00") && page.contains("70.25"),
        "both of Ann's gifts: {page}"
    );
    assert!(!page.contains("9.00 USD"), "not Bo's gift");
    assert!(
        page.contains("#2") && page.contains("#3"),
        "each gift's ledger entry"
    );
    let token = page
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("form token")
        .to_owned();

    // Resend: three a day per gift, through the outbox; a forged form or another's gift: no.
    let before = sink.messages().len();
    for n in 1..=4 {
        let resp = post_form(
            &app,
            "/receipts/gifts/1/resend",
            &[("form_token", &token), ("lang", "en")],
            Some(&cookie),
        )
        .await;
        assert_eq!(resp.status(), 303);
        let to = resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(
            to.ends_with(if n <= 3 { "sent=1" } else { "sent=limit" }),
            "{n}: {to}"
        );
    }
    assert_eq!(sink.wait_for(before + 3, 15).await.len(), before + 3);
    let forged = post_form(
        &app,
        "/receipts/gifts/1/resend",
        &[("form_token", "x"), ("lang", "en")],
        Some(&cookie),
    )
    .await;
    assert_eq!(forged.status(), 403);
    let others = post_form(
        &app,
        "/receipts/gifts/3/resend",
        &[("form_token", &token), ("lang", "en")],
        Some(&cookie),
    )
    .await;
    assert_eq!(others.status(), 404);

    // The year's statement: exact, that year only.
    let statement = get_page(&app, "/receipts/statement/2026?lang=en", Some(&cookie))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        statement.contains("70.25 USD") && !statement.contains("50.00"),
        "{statement}"
    );

    // A tampered session is no session.
    let tampered = cookie.replace('|', "|0");
    let page = get_page(&app, "/receipts/gifts?lang=en", Some(&tampered))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("action=\"/receipts/code\""),
        "asked to sign in again"
    );

    // The emailed link: opening it spends nothing, the button does, once.
    ask_code(&app, "ann@example.org").await;
    sink.wait_for(before + 4, 15).await;
    let (_, new_link) = code_mails(&sink, "ann@example.org")
        .into_iter()
        .find(|(_, l)| *l != link)
        .expect("a new link");
    let path2 = new_link
        .split_once("/receipts/")
        .map(|(_, p)| format!("/receipts/{p}"))
        .expect("path");
    for _ in 0..2 {
        let page = get_page(&app, &path2, None)
            .await
            .text()
            .await
            .expect("page");
        assert!(
            page.contains("action=\"/receipts/link\""),
            "a button, not a sign-in"
        );
    }
    let t = path2
        .split("t=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("t");
    let resp = post_form(&app, "/receipts/link", &[("t", t), ("lang", "en")], None).await;
    cookie_of(&resp);
    let resp = post_form(&app, "/receipts/link", &[("t", t), ("lang", "en")], None).await;
    assert_eq!(resp.status(), 200, "spent");
    assert!(
        resp.text()
            .await
            .expect("page")
            .contains("already been used")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_die_after_five_tries_and_asking_is_rate_limited() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp), ("RATE_LIMIT_LOOKUP_EMAIL", "2/h")]).await;
    let admin = app.token(Role::Admin).await;
    gift(&app, &admin, "5.00", "cy@example.org", "2026-01-02").await;
    ask_code(&app, "cy@example.org").await;
    sink.wait_for(2, 15).await;
    let (code, _) = code_mail(&sink, "cy@example.org");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        post_form(
            &app,
            "/receipts/verify",
            &[("email", "cy@example.org"), ("code", wrong)],
            None,
        )
        .await;
    }
    let resp = post_form(
        &app,
        "/receipts/verify",
        &[("email", "cy@example.org"), ("code", &code)],
        None,
    )
    .await;
    assert_eq!(
        resp.status(),
        200,
        "the right code after five wrong ones is dead"
    );
    // Per address: the third request within the hour gets no code, and says so.
    ask_code(&app, "cy@example.org").await;
    let third = ask_code(&app, "cy@example.org").await;
    assert!(third.contains("Too many tries"), "{third}");

    // Same timing order of magnitude for an address that gave and one that never did.
    let app2 = spawn_app_with(&[
        ("RATE_LIMIT_LOOKUP", "off"),
        ("RATE_LIMIT_LOOKUP_EMAIL", "off"),
    ])
    .await;
    let admin2 = app2.token(Role::Admin).await;
    gift(&app2, &admin2, "5.00", "dee@example.org", "2026-01-02").await;
    let measure = |email: &'static str| {
        let app2 = &app2;
        async move {
            let start = Instant::now();
            for _ in 0..10 {
                let resp = post_form(app2, "/receipts/code", &[("email", email)], None).await;
                assert_eq!(resp.status(), 200);
            }
            start.elapsed()
        }
    };
    let gave = measure("dee@example.org").await;
    let never = measure("nobody@example.org").await;
    let ratio = gave.as_secs_f64() / never.as_secs_f64();
    eprintln!("code request: gave {gave:?}, never gave {never:?} (10 each), ratio {ratio:.2}");
    assert!((0.1..10.0).contains(&ratio), "{gave:?} vs {never:?}");
}
