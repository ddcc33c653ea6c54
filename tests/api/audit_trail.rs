//! The audit trail an admin can read (issue 23): paged by id without skipping or repeating,
//! filtered by actor, action and day, exported as CSV (the export recorded in the trail it
//! exports), for admins only.

use crowdledger::auth::Role;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::reports::{get_csv, rows};

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    app.send(reqwest::Method::GET, path, token, None).await
}

/// Every row through pages of `limit`, following `next_after`.
async fn all_pages(app: &TestApp, admin: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0_i64;
    loop {
        let path = format!("/api/admin/audit?limit={limit}&after={after}{query}");
        let resp = get(app, &path, Some(admin)).await;
        assert_eq!(resp.status(), 200, "{path}");
        let page: Value = resp.json().await.expect("json");
        let rows = page["rows"].as_array().expect("rows").clone();
        assert!(rows.len() <= limit);
        out.extend(rows);
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_page_filter_and_export_the_audit_trail() {
    let app = spawn_app_with(&[]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;
    app.record_gifts(&treasurer, &["10.00", "20.00", "30.00"])
        .await;
    get_csv(&app, "/api/reports/donations.csv", &treasurer).await;

    // Only admins.
    assert_problem(
        get(&app, "/api/admin/audit", None).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        get(&app, "/api/admin/audit", Some(&treasurer)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        get(&app, "/api/reports/audit.csv", Some(&treasurer)).await,
        403,
        "forbidden",
    )
    .await;

    // Pages of two hold every row once, in id order.
    let total = app.count("audit_log");
    assert!(total >= 4, "gifts and the export are audited: {total}");
    let every = all_pages(&app, &admin, "", 2).await;
    let ids: Vec<i64> = every
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len() as i64, total, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Filters.
    let exports = all_pages(&app, &admin, "&action=report.export", 100).await;
    assert_eq!(exports.len(), 1, "{exports:?}");
    let detail: Value =
        serde_json::from_str(exports[0]["detail"].as_str().expect("detail")).expect("detail json");
    assert_eq!(detail["export"], "donations");
    let treasurer_email = exports[0]["actor"].as_str().expect("actor").to_owned();
    let by_treasurer = all_pages(&app, &admin, &format!("&actor={treasurer_email}"), 100).await;
    assert!(
        by_treasurer.len() >= 4,
        "the gifts and the export: {by_treasurer:?}"
    );
    assert!(
        by_treasurer
            .iter()
            .all(|r| r["actor"] == treasurer_email.as_str())
    );
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().expect("tomorrow");
    assert!(
        all_pages(&app, &admin, &format!("&from={tomorrow}"), 100)
            .await
            .is_empty()
    );
    assert_eq!(
        all_pages(&app, &admin, &format!("&from={today}&to={today}"), 100)
            .await
            .len() as i64,
        total
    );

    // Bad input is a clear 4xx.
    for bad in ["from=2026-13-01", "limit=lots", "actor=a&colour=red"] {
        let resp = get(&app, &format!("/api/admin/audit?{bad}"), Some(&admin)).await;
        assert!(resp.status().is_client_error(), "{bad}: {}", resp.status());
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }

    // The CSV: every row, its own export included (recorded before it is read).
    let text = get_csv(&app, "/api/reports/audit.csv", &admin).await;
    let csv_rows = rows(&text);
    assert_eq!(csv_rows.len() as i64, total + 1, "{text}");
    let last = csv_rows.last().expect("a row");
    assert_eq!(&last[3], "report.export");
    assert!(last[4].contains("\"audit\""), "{text}");
    assert_eq!(app.count("audit_log"), total + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_in_the_trail_with_the_clients_address() {
    let app = spawn_app_with(&[]).await;
    let admin = app.token(Role::Admin).await;
    let resp = app
        .client
        .post(format!("{}/api/auth/login", app.addr))
        .json(&serde_json::json!({ "email": "Someone@Example.org", "password": "guess one" }))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 401);
    let failed = all_pages(&app, &admin, "&action=auth.login_failed", 100).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["actor"], "someone@example.org");
    let ok = all_pages(&app, &admin, "&action=auth.login", 100).await;
    assert_eq!(ok.len(), 1, "the admin's own login: {ok:?}");
    for row in failed.iter().chain(&ok) {
        let detail: Value =
            serde_json::from_str(row["detail"].as_str().expect("detail")).expect("json");
        assert_eq!(detail["client"], "127.0.0.1", "{row}");
        assert!(
            !row["detail"].as_str().unwrap_or_default().contains("guess"),
            "no password"
        );
    }
}
