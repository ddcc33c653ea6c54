//! A ledger anyone can check: money paid out (a disbursement lowers the balance, never
//! raised; a void reverses it), the public projection (exactly its fields, no private data,
//! anonymous donors unnamed), the head, period changes in the chain, and `verify --public`
//! against the served pages, which names an entry a proxy altered. Both engines.

use crowdledger::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn disburse(
    app: &TestApp,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/api/disbursements", app.addr))
        .bearer_auth(token)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("request")
}

async fn public_page(app: &TestApp, query: &str) -> Value {
    let resp = app
        .client
        .get(format!("{}/api/public/ledger?{query}", app.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// Every public entry, oldest first.
async fn public_entries(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = public_page(app, &format!("after={after}&limit=3")).await;
        let entries = page["entries"].as_array().expect("entries").clone();
        all.extend(entries);
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_out_lowers_the_balance_never_raised_and_a_void_reverses_it() {
    // One person records these (the second admin's approval has its own test below).
    let app = crate::helpers::spawn_app_with(&[("APPROVAL_THRESHOLD", "off")]).await;
    let admin = app.token(Role::Admin).await;
    let treasurer = app.token(Role::Treasurer).await;
    let period = app
        .add_period(&admin, "August 2020", "2020-08-01", "2020-08-31", "6000.00")
        .await;
    assert_eq!(period.status(), 201);
    let period_id = period.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    app.record_gifts(&treasurer, &["10000.00"]).await;
    let body = json!({
        "amount": "2500.00", "payee": "Counsel LLP", "period_id": period_id, "paid_on": today(),
        "reference": "wire 77", "memo": "first invoice", "public_memo": "August hearing",
    });
    let resp = disburse(&app, &treasurer, &body, Some("pay-1")).await;
    assert_eq!(resp.status(), 201);
    let made: Value = resp.json().await.expect("json");
    assert_eq!(made["amount"], "2500.00");
    // The same key and body: the same answer, one disbursement; another body: a conflict.
    let again: Value = disburse(&app, &treasurer, &body, Some("pay-1"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again, made);
    let other = json!({ "amount": "1.00", "payee": "Counsel LLP", "paid_on": today() });
    assert_problem(
        disburse(&app, &treasurer, &other, Some("pay-1")).await,
        409,
        "idempotency_conflict",
    )
    .await;
    assert_eq!(app.count("disbursements"), 1);
    let csv = crate::reports::get_csv(&app, "/api/reports/disbursements.csv", &treasurer).await;
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("id,paid_on,payee,amount,currency")),
        "{csv}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains("Counsel LLP,2500.00,USD") && l.contains("wire 77")),
        "{csv}"
    );

    let fund = app.fund().await;
    assert_eq!(fund["raised"], "10000.00", "raised is untouched: {fund}");
    assert_eq!(fund["disbursed"], "2500.00");
    assert_eq!(fund["balance"], "7500.00");
    assert_eq!(fund["intake"]["state"], "open");
    let summary = app.get_json("/api/reports/summary", &treasurer).await;
    assert_eq!(
        (summary["disbursed"].as_str(), summary["balance"].as_str()),
        (Some("2500.00"), Some("7500.00")),
        "{summary}"
    );
    assert_eq!(summary["periods"][0]["paid"], "2500.00");
    assert_eq!(summary["totals"]["paid_out"], "2500.00");
    let p = &fund["periods"][0];
    assert_eq!(
        (
            p["covered"].as_str(),
            p["paid"].as_str(),
            p["balance"].as_str()
        ),
        (Some("6000.00"), Some("2500.00"), Some("3500.00")),
        "{p}"
    );

    // Bad input writes nothing.
    let seq_before = app.verify().entries;
    for (body, status, code) in [
        (
            json!({ "amount": "0", "payee": "X", "paid_on": today() }),
            422,
            "invalid_amount",
        ),
        (
            json!({ "amount": "-5.00", "payee": "X", "paid_on": today() }),
            422,
            "invalid_amount",
        ),
        (
            json!({ "amount": "5.00", "payee": "X", "paid_on": today(), "period_id": 999 }),
            422,
            "invalid_request",
        ),
        (
            json!({ "amount": "5.00", "payee": "X", "paid_on": today(), "currency": "EUR" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "amount": "5.00", "payee": " ", "paid_on": today() }),
            422,
            "invalid_request",
        ),
        (
            json!({ "amount": "7500.01", "payee": "X", "paid_on": today() }),
            409,
            "exceeds_balance",
        ),
    ] {
        let resp = disburse(&app, &treasurer, &body, None).await;
        assert_problem(resp, status, code).await;
    }
    assert_eq!(app.count("disbursements"), 1);
    assert_eq!(app.verify().entries, seq_before, "no entry written");

    // A void is a reversing entry; a void of a void is refused; a treasurer cannot void.
    let id = made["id"].as_i64().expect("id");
    let path = format!("/api/disbursements/{id}/void");
    let reason = json!({ "reason": "paid twice by mistake" });
    let resp = app
        .send(Method::POST, &path, Some(&treasurer), Some(&reason))
        .await;
    assert_problem(resp, 403, "forbidden").await;
    let resp = app
        .send(Method::POST, &path, Some(&admin), Some(&reason))
        .await;
    assert_eq!(resp.status(), 200);
    let voided: Value = resp.json().await.expect("json");
    assert!(
        voided["voided_at"].is_string() && voided["void_entry_seq"].is_i64(),
        "{voided}"
    );
    let resp = app
        .send(Method::POST, &path, Some(&admin), Some(&reason))
        .await;
    assert_problem(resp, 409, "already_voided").await;
    let fund = app.fund().await;
    assert_eq!(
        (fund["disbursed"].as_str(), fund["balance"].as_str()),
        (Some("0.00"), Some("10000.00"))
    );
    assert_eq!(fund["periods"][0]["paid"], "0.00");
    let list = app.get_json("/api/disbursements", &treasurer).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.disbursed_minor, 0);
    // A period's budget changed behind the ledger's back moves money between periods: verify
    // sees it against the period's last entry.
    {
        use diesel::connection::SimpleConnection;
        app.conn()
            .batch_execute(&format!(
                "UPDATE periods SET budget_minor = 100 WHERE id = {period_id}"
            ))
            .expect("tamper");
    }
    let report = app.verify();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("period {period_id} is"))),
        "{:?}",
        report.problems
    );
    let kinds: Vec<String> = public_entries(&app)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in ["period", "donation", "disbursement", "disbursement_void"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_ledger_shows_its_projection_and_nothing_private() {
    let app = spawn_app().await;
    let admin_email = app.user(Role::Admin);
    let admin = crate::helpers::login(&app, &admin_email).await;
    let treasurer = app.token(Role::Treasurer).await;
    let gift = |name: &str, email: &str, anonymous: bool| {
        json!({ "amount": "300.00", "donor_name": name, "email": email, "method": "check",
                "reference": "CANARY-CHECK-REF", "anonymous": anonymous })
    };
    let named = app
        .post_offline(
            &treasurer,
            &gift("Ann Public", "ann-canary@example.org", false),
            None,
        )
        .await;
    assert_eq!(named.status(), 201);
    let hidden = app
        .post_offline(
            &treasurer,
            &gift("Secret Sam", "sam-canary@example.org", true),
            None,
        )
        .await;
    let hidden_id = hidden.json::<Value>().await.expect("json")["donation_id"]
        .as_i64()
        .expect("id");
    let refund = json!({ "amount": "10.00", "reason": "CANARY-REFUND-REASON" });
    let resp = app
        .send(
            Method::POST,
            &format!("/api/admin/donations/{hidden_id}/refund"),
            Some(&admin),
            Some(&refund),
        )
        .await;
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let body = json!({ "amount": "100.00", "payee": "Counsel LLP", "paid_on": today(),
                       "reference": "CANARY-WIRE-REF", "memo": "CANARY-INTERNAL-MEMO",
                       "public_memo": "Counsel fees" });
    assert_eq!(disburse(&app, &treasurer, &body, None).await.status(), 201);

    let entries = public_entries(&app).await;
    let fields: Vec<&str> = crowdledger::reports::public::PUBLIC_FIELDS.to_vec();
    for e in &entries {
        let mut keys: Vec<&str> = e
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want = fields.clone();
        want.sort_unstable();
        assert_eq!(keys, want, "entry {}", e["seq"]);
    }
    let text = serde_json::to_string(&entries).expect("json");
    for secret in [
        "ann-canary@example.org",
        "sam-canary@example.org",
        "Secret Sam",
        "CANARY-REFUND-REASON",
        "CANARY-WIRE-REF",
        "CANARY-INTERNAL-MEMO",
        "CANARY-CHECK-REF",
        admin_email.as_str(),
        "treasurer-",
    ] {
        assert!(!text.contains(secret), "{secret} is on the public ledger");
    }
    assert!(
        text.contains("Ann Public")
            && text.contains("Counsel LLP")
            && text.contains("Counsel fees")
    );
    let anon = entries
        .iter()
        .find(|e| e["kind"] == "donation" && e["donation_id"] == hidden_id)
        .expect("the anonymous gift");
    assert_eq!(anon["donor"], Value::Null);
    let paid = entries
        .iter()
        .find(|e| e["kind"] == "disbursement")
        .expect("disbursement");
    assert_eq!(
        (paid["amount"].as_str(), paid["amount_minor"].as_i64()),
        (Some("100.00"), Some(0))
    );
    assert_eq!(paid["balance_after"], "490.00");

    // The head names the last entry; newest-first paging meets the same entries.
    let head: Value = app
        .client
        .get(format!("{}/api/public/head", app.addr))
        .send()
        .await
        .expect("head")
        .json()
        .await
        .expect("json");
    let last = entries.last().expect("entries");
    assert_eq!(
        (head["seq"].clone(), head["hash"].clone()),
        (last["seq"].clone(), last["hash"].clone())
    );
    assert_eq!(
        (head["raised"].as_str(), head["balance"].as_str()),
        (Some("590.00"), Some("490.00"))
    );
    let newest = public_page(&app, "limit=2").await;
    assert_eq!(newest["entries"][0]["seq"], last["seq"]);
    assert!(newest["next_before"].is_i64());
    let resp = app
        .client
        .get(format!("{}/api/public/ledger?after=1&before=3", app.addr))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 422, "invalid_request").await;

    // Each gift's entry still verifies after the later refund (a refund is its own entry).
    let (ok, out) = verify_public(&app.addr).await;
    assert!(ok, "{out}");

    // The association can hide every name.
    let app = app.restart_with(&[("PUBLIC_DONOR_NAMES", "off")]).await;
    let text = serde_json::to_string(&public_entries(&app).await).expect("json");
    assert!(!text.contains("Ann Public"), "names hidden");
}

/// A proxy in front of the app that changes `from` into `to` (once) in every answer.
async fn tampering_proxy(target: String, from: String, to: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (target, from, to) = (target.clone(), from.clone(), to.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; 16 * 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = reqwest::get(format!("{target}{path}"))
                    .await
                    .expect("upstream")
                    .text()
                    .await
                    .expect("body");
                let body = body.replacen(&from, &to, 1);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

async fn verify_public(url: &str) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_crowdledger"))
        .args(["verify", "--public", url])
        .env("DATABASE_URL", "sqlite:///nonexistent/never-opened.db")
        .output()
        .await
        .expect("run verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_verifies_the_public_ledger_and_an_altered_page_names_its_entry() {
    let app = spawn_app().await;
    let treasurer = app.token(Role::Treasurer).await;
    app.record_gifts(&treasurer, &["50.00", "70.00", "80.00"])
        .await;
    let body = json!({ "amount": "120.00", "payee": "Counsel LLP", "paid_on": today(), "public_memo": "Counsel fees" });
    assert_eq!(disburse(&app, &treasurer, &body, None).await.status(), 201);
    let entries = public_entries(&app).await;
    let (ok, out) = verify_public(&app.addr).await;
    assert!(ok, "{out}");
    let last = entries.last().expect("entries");
    assert!(
        out.contains(&format!(
            "head seq {} hash {}",
            last["seq"],
            last["hash"].as_str().expect("hash")
        )),
        "{out}"
    );

    let paid = entries
        .iter()
        .find(|e| e["kind"] == "disbursement")
        .expect("disbursement");
    let gift = entries
        .iter()
        .find(|e| e["amount_minor"] == 7000)
        .expect("the 70.00 gift");
    for (from, to, seq) in [
        (
            "Counsel fees".to_owned(),
            "Counsel feez".to_owned(),
            paid["seq"].clone(),
        ),
        (
            "\"amount_minor\":7000".to_owned(),
            "\"amount_minor\":7001".to_owned(),
            gift["seq"].clone(),
        ),
    ] {
        let proxy = tampering_proxy(app.addr.clone(), from.clone(), to).await;
        let (ok, out) = verify_public(&proxy).await;
        assert!(!ok, "{from}: {out}");
        assert!(
            out.contains(&format!("first bad entry is seq {seq}")),
            "{from}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_page_and_each_receipt_point_at_the_gifts_entry() {
    let sink = crate::smtp::SmtpSink::start().await;
    let smtp = sink.url();
    let app = crate::helpers::spawn_app_with(&[
        ("SMTP_URL", smtp.as_str()),
        ("PUBLIC_BASE_URL", "https://give.example.org"),
    ])
    .await;
    let treasurer = app.token(Role::Treasurer).await;
    let named = json!({ "amount": "25.00", "donor_name": "Mei Chen", "email": "mei@example.org",
                        "method": "check", "locale": "zh-CN" });
    let gift: Value = app
        .post_offline(&treasurer, &named, None)
        .await
        .json()
        .await
        .expect("json");
    let hidden = json!({ "amount": "30.00", "donor_name": "Hidden Hu", "method": "cash", "anonymous": true });
    assert_eq!(
        app.post_offline(&treasurer, &hidden, None).await.status(),
        201
    );
    let entries = public_entries(&app).await;
    let entry = entries
        .iter()
        .find(|e| e["donation_id"] == gift["donation_id"] && e["kind"] == "donation")
        .expect("the gift's entry");
    let seq = entry["seq"].as_i64().expect("seq");

    // The receipt (here in Chinese) names the entry, its hash and the page that shows it.
    let messages = sink.wait_for(1, 15).await;
    let text = messages[0]["text"].as_str().expect("text");
    assert!(
        text.contains(&format!("https://give.example.org/ledger?seq={seq}")),
        "{text}"
    );
    assert!(
        text.contains(entry["hash"].as_str().expect("hash")),
        "{text}"
    );
    assert!(text.contains(&format!("第 {seq} 条")), "{text}");

    for (lang, anonymous) in [("en", "Anonymous"), ("zh-CN", "匿名")] {
        let resp = app
            .client
            .get(format!("{}/ledger?lang={lang}&seq={seq}", app.addr))
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), 200);
        let csp = resp
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let html = resp.text().await.expect("html");
        assert!(
            html.contains(&format!(
                "<tr id=\"entry-{seq}\" class=\"highlight\" aria-current=\"true\">"
            )),
            "{lang}"
        );
        assert!(
            html.contains("Mei Chen") && html.contains(anonymous),
            "{lang}"
        );
        assert!(
            !html.contains("Hidden Hu") && !html.contains("mei@example.org"),
            "{lang}"
        );
        assert!(!html.contains("<script"), "no script on the ledger page");
        let head = entries.last().expect("entries")["hash"]
            .as_str()
            .expect("hash")
            .to_owned();
        assert!(html.contains(&head), "{lang}: the head hash");
    }
    let donor_page = app
        .client
        .get(format!("{}/?lang=en", app.addr))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        donor_page.contains("href=\"/ledger?lang=en\""),
        "the donor page links the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_payment_waits_for_a_second_admin() {
    let app = spawn_app().await;
    let first_email = app.user(Role::Admin);
    let first = crate::helpers::login(&app, &first_email).await;
    let (second, third) = (app.token(Role::Admin).await, app.token(Role::Admin).await);
    let treasurer = app.token(Role::Treasurer).await;
    app.record_gifts(&treasurer, &["5000.00"]).await;
    let seq_before = app.verify().entries;
    // Above APPROVAL_THRESHOLD (1000 by default): nothing reaches the ledger yet.
    let big = json!({ "amount": "1200.00", "payee": "Counsel LLP", "paid_on": today() });
    let resp = disburse(&app, &first, &big, None).await;
    assert_eq!(resp.status(), 202);
    let waiting: Value = resp.json().await.expect("json");
    assert_eq!(
        (waiting["state"].as_str(), waiting["entry_seq"].is_null()),
        (Some("pending_approval"), true)
    );
    assert_eq!(app.fund().await["disbursed"], "0.00");
    assert_eq!(app.verify().entries, seq_before);
    let id = waiting["id"].as_i64().expect("id");
    let path = |verb: &str| format!("/api/disbursements/{id}/{verb}");
    let resp = app
        .send(Method::POST, &path("approve"), Some(&first), None)
        .await;
    assert_problem(resp, 403, "approval_own_request").await;
    let resp = app
        .send(Method::POST, &path("approve"), Some(&treasurer), None)
        .await;
    assert_problem(resp, 403, "forbidden").await;
    // Two admins approve at once: one payment.
    let approve = path("approve");
    let (a, b) = tokio::join!(
        app.send(Method::POST, &approve, Some(&second), None),
        app.send(Method::POST, &approve, Some(&third), None),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let fund = app.fund().await;
    assert_eq!(
        (fund["disbursed"].as_str(), fund["balance"].as_str()),
        (Some("1200.00"), Some("3800.00"))
    );
    assert_eq!(app.verify().entries, seq_before + 1, "one entry");
    // Another waits and is rejected: it never reaches the ledger.
    let other: Value = disburse(
        &app,
        &treasurer,
        &json!({ "amount": "1500.00", "payee": "Expert witness", "paid_on": today() }),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let other_id = other["id"].as_i64().expect("id");
    let resp = app
        .send(
            Method::POST,
            &format!("/api/disbursements/{other_id}/reject"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .send(
            Method::POST,
            &format!("/api/disbursements/{other_id}/approve"),
            Some(&third),
            None,
        )
        .await;
    let problem = assert_problem(resp, 409, "approval_not_pending").await;
    assert_eq!(problem["state"], "rejected");
    let resp = app
        .send(
            Method::POST,
            &format!("/api/disbursements/{other_id}/void"),
            Some(&second),
            Some(&json!({ "reason": "x" })),
        )
        .await;
    assert_problem(resp, 409, "approval_not_pending").await;
    assert_eq!(app.fund().await["disbursed"], "1200.00");
    let report = app.verify();
    assert!(report.is_ok(), "{:?}", report.problems);
    use crowdledger::db::schema::audit_log;
    use diesel::prelude::*;
    let actions: Vec<String> = audit_log::table
        .select(audit_log::action)
        .load(&mut app.conn())
        .expect("audit");
    for action in [
        "disbursement.approval_requested",
        "disbursement.approved",
        "disbursement.rejected",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}");
    }
}
