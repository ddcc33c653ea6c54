//! The HTML pages over HTTP (the browser test drives them for real): languages, intake
//! states, escaping, security headers, and the status endpoint the thank-you view polls.

use crowdledger::auth::Role;
use serde_json::Value;

use crate::helpers::{assert_problem, gift, spawn_app_with, spawn_app_with_stripe};

async fn page(
    app: &crate::helpers::TestApp,
    path: &str,
    accept_language: Option<&str>,
) -> (reqwest::header::HeaderMap, String) {
    let mut req = app.client.get(format!("{}{path}", app.addr));
    if let Some(l) = accept_language {
        req = req.header("Accept-Language", l);
    }
    let resp = req.send().await.expect("page");
    assert_eq!(resp.status(), 200, "{path}");
    let headers = resp.headers().clone();
    (headers, resp.text().await.expect("html"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_donor_page_speaks_both_languages_and_escapes_what_it_shows() {
    let app = spawn_app_with(&[("FUND_NAME", "Defense <script>alert(1)</script> Fund")]).await;
    let (headers, en) = page(&app, "/", None).await;
    assert!(en.contains("lang=\"en\""));
    assert!(!en.contains("<script>alert(1)</script>"));
    assert!(en.contains("&lt;script&gt;"));
    let (_, zh) = page(&app, "/?lang=zh-CN", None).await;
    assert!(zh.contains("lang=\"zh-CN\""));
    let (_, negotiated) = page(&app, "/", Some("zh-TW,zh;q=0.9,en;q=0.5")).await;
    assert!(negotiated.contains("lang=\"zh-CN\""));
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self' https://js.stripe.com"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("referrer-policy"));
    // No inline script anywhere on the page: only external files.
    for chunk in en.split("<script").skip(1) {
        let tag = chunk.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=") || tag.contains("application/json"),
            "inline script: <script{tag}>"
        );
    }
    for asset in ["/static/site.css", "/static/donate.js", "/static/admin.js"] {
        let resp = app
            .client
            .get(format!("{}{asset}", app.addr))
            .send()
            .await
            .expect("asset");
        assert_eq!(resp.status(), 200, "{asset}");
    }
    let (_, admin) = page(&app, "/admin", None).await;
    assert!(admin.contains("lang=\"en\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_intake_is_not_open_the_page_shows_the_message_and_no_form() {
    let app = spawn_app_with(&[("FUND_TARGET", "100.00")]).await;
    let admin = app.token(Role::Admin).await;
    let (_, open) = page(&app, "/", None).await;
    assert!(open.contains("id=\"donate-form\""));
    assert_eq!(
        app.put_intake(&admin, false, "Paused: the court meets on Monday.")
            .await
            .status(),
        200
    );
    let (_, paused) = page(&app, "/", None).await;
    assert!(!paused.contains("id=\"donate-form\""));
    assert!(paused.contains("Paused: the court meets on Monday."));
    // Reopened without clearing the message; reaching the target must not show it.
    assert_eq!(
        app.put_intake(&admin, true, "Paused: the court meets on Monday.")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_offline(&admin, &gift("100.00"), None)
            .await
            .status(),
        201
    );
    let (_, closed) = page(&app, "/?lang=zh-CN", None).await;
    assert!(!closed.contains("id=\"donate-form\""));
    assert!(closed.contains("id=\"intake-message\""));
    assert!(
        !closed.contains("Paused: the court meets on Monday."),
        "the old pause message is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_needs_the_donations_token() {
    let app = spawn_app_with_stripe(&[]).await;
    let resp = app.donate("30.00").await;
    let body: Value = resp.json().await.expect("json");
    let id = body["donation_id"].as_i64().expect("id");
    let token = body["status_token"].as_str().expect("token").to_owned();
    let status = |t: String| {
        let app = &app;
        async move {
            app.send(
                reqwest::Method::GET,
                &format!("/api/donations/{id}/status?token={t}"),
                None,
                None,
            )
            .await
        }
    };
    let ok: Value = status(token.clone()).await.json().await.expect("json");
    assert_eq!(ok, serde_json::json!({ "status": "pending" }));
    assert_problem(status("0".repeat(64)).await, 404, "not_found").await;
    let other = app
        .send(
            reqwest::Method::GET,
            &format!("/api/donations/{}/status?token={token}", id + 1),
            None,
            None,
        )
        .await;
    assert_problem(other, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_charts_are_svg_with_escaped_labels() {
    let app = spawn_app_with(&[]).await;
    let admin = app.token(Role::Admin).await;
    assert_eq!(
        app.add_period(
            &admin,
            "August <b>2020</b>",
            "2020-08-01",
            "2020-08-31",
            "60.00"
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.post_offline(&admin, &gift("25.00"), None)
            .await
            .status(),
        201
    );
    for chart in ["daily", "periods"] {
        let resp = app
            .send(
                reqwest::Method::GET,
                &format!("/api/admin/charts/{chart}.svg"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/svg+xml");
        let svg = resp.text().await.expect("svg");
        assert!(
            svg.starts_with("<svg") && !svg.contains("<script") && !svg.contains("<b>"),
            "{svg}"
        );
    }
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/admin/charts/daily.svg",
            None,
            None,
        )
        .await;
    assert_problem(resp, 401, "unauthorized").await;
}

/// Give by check (issue 24): with `CHECK_PAYEE` and `CHECK_ADDRESS` the page names both and the
/// memo line, in both languages, whenever intake is open (card giving or not); without them it
/// says nothing about checks rather than half of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_gives_the_check_address_or_says_nothing_of_checks() {
    let app = spawn_app_with(&[
        ("CHECK_PAYEE", "Chinatown Community <Association>"),
        ("CHECK_ADDRESS", "P.O. Box 123\\nSan Francisco, CA 94108"),
    ])
    .await;
    for (lang, memo) in [("en", "memo"), ("zh-CN", "备注")] {
        let (_, html) = page(&app, &format!("/?lang={lang}"), None).await;
        assert!(html.contains("id=\"give-by-check\""), "{lang}");
        assert!(
            html.contains("Chinatown Community &lt;Association&gt;"),
            "{lang}: payee escaped"
        );
        assert!(
            html.contains("P.O. Box 123") && html.contains("San Francisco, CA 94108"),
            "{lang}"
        );
        assert!(html.contains(memo), "{lang}: the memo line");
        // Card giving is not configured here: the notice points to the check.
        assert!(html.contains("id=\"payments-unavailable\""), "{lang}");
    }
    let plain = spawn_app_with(&[]).await;
    for lang in ["en", "zh-CN"] {
        let (_, html) = page(&plain, &format!("/?lang={lang}"), None).await;
        assert!(!html.contains("give-by-check"), "{lang}");
        let notice = html
            .split("id=\"payments-unavailable\">")
            .nth(1)
            .and_then(|r| r.split("</p>").next())
            .expect("the notice");
        assert!(
            !notice.contains("check") && !notice.contains("支票"),
            "{lang}: {notice}"
        );
    }
    // Intake paused: no way to give is offered, checks included.
    let admin = app.token(Role::Admin).await;
    let resp = app
        .send(
            reqwest::Method::PUT,
            "/api/admin/intake",
            Some(&admin),
            Some(&serde_json::json!({ "accepting": false, "message": "" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (_, html) = page(&app, "/?lang=en", None).await;
    assert!(!html.contains("give-by-check"));
}
