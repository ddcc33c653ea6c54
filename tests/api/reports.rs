//! Treasurer reports: golden CSV formats, formula injection, totals that match the rows,
//! filters, the CLI twin, the audit log, and who may export.

use crowdledger::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// A fixed data set: two periods, six offline gifts (one refunded in part), intake closed.
async fn fixture() -> (TestApp, String) {
    let app = spawn_app_with(&[
        ("FUND_TARGET", "300.00"),
        ("FUND_NAME", "Community Legal Defense"),
    ])
    .await;
    let admin = app.token(Role::Admin).await;
    assert_eq!(
        app.add_period(&admin, "August 2020", "2020-08-01", "2020-08-31", "60.00")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.add_period(
            &admin,
            "September 2020",
            "2020-09-01",
            "2020-09-30",
            "40.00"
        )
        .await
        .status(),
        201
    );
    let gifts = [
        (
            "100.00",
            "Ann Lee",
            "ann@example.org",
            "check",
            "1001",
            "2020-08-03",
        ),
        (
            "25.00",
            "=HYPERLINK(\"http://x\")",
            "",
            "cash",
            "",
            "2020-08-03",
        ),
        (
            "10.50",
            "陈美",
            "chen@example.org",
            "wire",
            "W-77",
            "2020-08-04",
        ),
        ("30.00", "+1", "", "check", "-1+1", "2020-08-05"),
        ("20.00", "@SUM(1)", "", "other", "\tx", "2020-08-05"),
        (
            "200.00",
            "Bo Wong",
            "bo@example.org",
            "check",
            "1002",
            "2020-09-01",
        ),
    ];
    for (amount, name, email, method, reference, day) in gifts {
        let mut body =
            json!({ "amount": amount, "donor_name": name, "method": method, "received_on": day });
        if !email.is_empty() {
            body["email"] = json!(email);
        }
        if !reference.is_empty() {
            body["reference"] = json!(reference);
        }
        assert_eq!(
            app.post_offline(&admin, &body, None).await.status(),
            201,
            "{name}"
        );
    }
    let resp = app
        .send(
            reqwest::Method::POST,
            "/api/admin/donations/1/refund",
            Some(&admin),
            Some(&json!({ "amount": "25.00", "reason": "returned" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    (app, admin)
}

pub(crate) async fn get_csv(app: &TestApp, path: &str, token: &str) -> String {
    let resp = app
        .send(reqwest::Method::GET, path, Some(token), None)
        .await;
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    resp.text().await.expect("body")
}

pub(crate) fn rows(csv_text: &str) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.expect("valid RFC 4180"))
        .collect()
}

fn minor(text: &str) -> i64 {
    crowdledger::money::Currency::USD
        .parse_minor(text.trim_start_matches('-'))
        .expect("amount")
        * if text.starts_with('-') { -1 } else { 1 }
}

fn stable(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_owned();
        // Times and hashes differ per run; the formats and every figure must not.
        for (i, _) in line.match_indices('T').rev() {
            if i >= 10
                && line.get(i + 16..i + 17) == Some("Z")
                && line.get(i - 10..i).is_some_and(|d| d.as_bytes()[4] == b'-')
            {
                l.replace_range(i - 10..i + 17, "[time]");
            }
        }
        let words: Vec<String> = l
            .split(',')
            .map(|w| {
                if w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "[hash]".to_owned()
                } else {
                    w.to_owned()
                }
            })
            .collect();
        out.push_str(&words.join(","));
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_formats_are_stable() {
    let (app, admin) = fixture().await;
    let donations = get_csv(&app, "/api/reports/donations.csv", &admin).await;
    insta::assert_snapshot!("donations_csv", stable(&donations));
    let periods = get_csv(&app, "/api/reports/periods.csv", &admin).await;
    insta::assert_snapshot!("periods_csv", stable(&periods));
    let ledger = get_csv(&app, "/api/reports/ledger.csv", &admin).await;
    insta::assert_snapshot!("ledger_csv", stable(&ledger));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulas_are_neutralised_and_refunds_stay_numbers() {
    let (app, admin) = fixture().await;
    let donations = rows(&get_csv(&app, "/api/reports/donations.csv", &admin).await);
    let names: Vec<&str> = donations.iter().map(|r| &r[2]).collect();
    assert!(names.contains(&"'=HYPERLINK(\"http://x\")"), "{names:?}");
    assert!(names.contains(&"'+1"));
    assert!(names.contains(&"'@SUM(1)"));
    let refs: Vec<&str> = donations.iter().map(|r| &r[6]).collect();
    assert!(refs.contains(&"'-1+1"), "{refs:?}");
    // Leading tabs and CRs never reach a cell: input is trimmed (and text_cell's own tests
    // cover them); what is left is inert.
    assert!(refs.contains(&"x"), "{refs:?}");
    for r in &donations {
        for cell in r.iter() {
            assert!(!cell.starts_with(['=', '+', '@', '\t', '\r']), "{cell:?}");
        }
    }
    let ledger = rows(&get_csv(&app, "/api/reports/ledger.csv", &admin).await);
    let refund = ledger
        .iter()
        .find(|r| &r[2] == "refund")
        .expect("refund row");
    assert_eq!(
        &refund[4], "-25.00",
        "a reversal is a plain negative number"
    );
    // Excel: a BOM so Chinese names show.
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/reports/donations.csv?excel=1",
            Some(&admin),
            None,
        )
        .await;
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    assert!(String::from_utf8_lossy(&bytes).contains("陈美"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_totals_equal_the_csv_rows_to_the_cent() {
    let (app, admin) = fixture().await;
    let donations = rows(&get_csv(&app, "/api/reports/donations.csv", &admin).await);
    let summary: Value = app.get_json("/api/reports/summary", &admin).await;
    let sum = |col: usize| donations.iter().map(|r| minor(&r[col])).sum::<i64>();
    assert_eq!(
        minor(summary["totals"]["gross"].as_str().expect("gross")),
        sum(8)
    );
    assert_eq!(
        minor(summary["totals"]["fees"].as_str().expect("fees")),
        sum(9)
    );
    assert_eq!(
        minor(summary["totals"]["net"].as_str().expect("net")),
        sum(10)
    );
    assert_eq!(
        minor(summary["totals"]["refunds"].as_str().expect("refunds")),
        sum(11)
    );
    assert_eq!(summary["raised"], "360.50");
    assert_eq!(
        sum(8) - sum(11) - sum(12),
        36_050,
        "raised = gross - refunds - disputed"
    );
    // Per period: the summary, the allocations in the CSV and the public fund agree.
    let fund = app.fund().await;
    let mut csv_alloc = std::collections::HashMap::<String, i64>::new();
    for r in &donations {
        for part in r[14].split("; ").filter(|p| !p.is_empty()) {
            let (label, amount) = part.rsplit_once('=').expect("label=amount");
            *csv_alloc.entry(label.to_owned()).or_default() += minor(amount);
        }
    }
    for (i, p) in summary["periods"]
        .as_array()
        .expect("periods")
        .iter()
        .enumerate()
    {
        let label = p["label"].as_str().expect("label");
        assert_eq!(p["covered"], fund["periods"][i]["covered"]);
        assert_eq!(
            minor(p["covered"].as_str().expect("covered")),
            csv_alloc[label],
            "{label}"
        );
    }
    let by_day: i64 = summary["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| minor(d["gross"].as_str().expect("gross")))
        .sum();
    assert_eq!(by_day, sum(8));
    let periods = rows(&get_csv(&app, "/api/reports/periods.csv", &admin).await);
    assert_eq!(&periods[0][5], "60.00");
    assert_eq!(&periods[1][5], "40.00");
    assert_eq!(&periods[2][5], "260.50", "unallocated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_rows() {
    let (app, admin) = fixture().await;
    let only = |q: &str| {
        let app = &app;
        let admin = admin.clone();
        let q = q.to_owned();
        async move {
            rows(&get_csv(app, &format!("/api/reports/donations.csv?{q}"), &admin).await).len()
        }
    };
    assert_eq!(only("").await, 6);
    assert_eq!(only("from=2020-08-04&to=2020-08-05").await, 3);
    assert_eq!(only("method=check").await, 3);
    assert_eq!(only("status=pending").await, 0);
    let periods: Value = app.fund().await["periods"].clone();
    let september = periods[1]["id"].as_i64().expect("id");
    // September's 40.00 is covered after August's 60.00: by the last 15.00 of Ann's 75.00
    // (100.00 less 25.00 refunded) and by gift 2's 25.00.
    assert_eq!(only(&format!("period={september}")).await, 2);
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/reports/donations.csv?from=yesterday",
            Some(&admin),
            None,
        )
        .await;
    assert_problem(resp, 422, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_need_a_treasurer_and_are_audited() {
    let (app, admin) = fixture().await;
    let resp = app
        .send(
            reqwest::Method::GET,
            "/api/reports/donations.csv",
            None,
            None,
        )
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    let treasurer = app.token(Role::Treasurer).await;
    let by_treasurer = get_csv(&app, "/api/reports/ledger.csv?from=2000-01-01", &treasurer).await;
    let by_admin = get_csv(&app, "/api/reports/ledger.csv?from=2000-01-01", &admin).await;
    assert_eq!(by_treasurer, by_admin);
    use crowdledger::db::schema::audit_log;
    use diesel::prelude::*;
    let exports: Vec<(String, String)> = audit_log::table
        .filter(audit_log::action.eq("report.export"))
        .select((audit_log::actor, audit_log::detail))
        .load(&mut app.conn())
        .expect("audit");
    assert_eq!(exports.len(), 2);
    assert!(
        exports
            .iter()
            .any(|(a, d)| a.starts_with("treasurer-") && d.contains("\"from\":\"2000-01-01\"")),
        "{exports:?}"
    );
    // The CLI writes the same bytes.
    let out = app.cli(&["export", "ledger", "--from", "2000-01-01"], &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), by_admin);
}
