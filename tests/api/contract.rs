//! The OpenAPI contract: the document itself (snapshot), that it describes every route and
//! only routes that exist, and schemathesis fuzzing the live app from it with every check.

use std::collections::BTreeSet;

use crowdledger::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with_stripe};

async fn document(app: &crate::helpers::TestApp) -> Value {
    let resp = app.send(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(resp.status(), 200, "the document is public");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ct, "application/json");
    resp.json().await.expect("openapi json")
}

/// Every `(method, path)` of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_public_and_matches_its_snapshot() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");

    let ops = operations(&doc);
    let public: BTreeSet<(&str, &str)> = [
        ("get", "/api/fund"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/api/openapi.json"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/mfa"),
        ("post", "/api/donations"),
        ("get", "/api/donations/{id}/status"),
        ("get", "/api/public/ledger"),
        ("get", "/api/public/head"),
        ("post", "/webhooks/stripe"),
    ]
    .into_iter()
    .collect();
    let mut ids = BTreeSet::new();
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        assert!(
            ids.insert(op["operationId"].as_str().expect("operationId").to_owned()),
            "duplicate operationId at {method} {path}"
        );
        let is_public = public.contains(&(method.as_str(), path.as_str()));
        let responses = &op["responses"];
        if is_public {
            assert!(op.get("security").is_none(), "{method} {path} is public");
            if path != "/api/auth/login" && path != "/api/auth/mfa" {
                assert!(responses.get("401").is_none(), "{method} {path}: no 401");
            }
        } else {
            assert_eq!(op["security"], json!([{ "bearer": [] }]), "{method} {path}");
            // 401 is only `unauthorized`; 403 is `forbidden` (the role) and, on a few
            // routes, a named refusal of the caller (`approval_own_request`). The routes an
            // account that must still enrol a second factor may use have no role and no 403.
            let any_account = [
                "/api/auth/me",
                "/api/auth/2fa/enrol",
                "/api/auth/2fa/confirm",
                "/api/auth/logout",
            ]
            .contains(&path.as_str());
            let expected: &[(&str, &str)] = if any_account {
                assert!(responses.get("403").is_none(), "{method} {path}: no 403");
                &[("401", "unauthorized")]
            } else {
                &[("401", "unauthorized"), ("403", "forbidden")]
            };
            for &(status, code) in expected {
                let codes = &responses[status]["content"]["application/problem+json"]["schema"]["allOf"]
                    [1]["properties"]["code"]["enum"];
                let codes = codes.as_array().expect("codes");
                assert!(codes.contains(&json!(code)), "{method} {path} {status}");
                if status == "401" {
                    assert_eq!(codes.len(), 1, "{method} {path} {status}");
                }
            }
        }
        // Every error answer is problem+json whose `code` is narrowed to real codes.
        for (status, response) in responses.as_object().expect("responses") {
            if status.starts_with('2') {
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"];
            assert_eq!(
                schema["allOf"][0]["$ref"], "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
            let all_codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
            for code in schema["allOf"][1]["properties"]["code"]["enum"]
                .as_array()
                .expect("codes")
            {
                assert!(
                    all_codes.as_array().expect("enum").contains(code),
                    "{code} is not an ErrorCode"
                );
            }
        }
        // Request bodies refuse unknown members, as the handlers do.
        if let Some(r) = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
        {
            let name = r.trim_start_matches("#/components/schemas/");
            if name != "StripeEvent" {
                assert_eq!(
                    doc["components"]["schemas"][name]["additionalProperties"], false,
                    "{name}"
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": doc["components"]["securitySchemes"]["bearer"]["description"],
        })
    );
    // Amounts are decimal strings, never numbers.
    assert_eq!(doc["components"]["schemas"]["Amount"]["type"], "string");
    assert_eq!(
        doc["paths"]["/api/fund"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/FundView"
    );
    assert_eq!(
        doc["components"]["schemas"]["FundView"]["properties"]["raised"]["$ref"],
        "#/components/schemas/Amount"
    );
    insta::assert_snapshot!(
        "openapi_json",
        serde_json::to_string_pretty(&doc).expect("pretty")
    );
}

/// Each documented operation reaches a handler: with no body or parameters it answers
/// something other than "no route" (404 `no route for ...`) or 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let token = app.token(Role::Admin).await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 23, "only {} operations documented", ops.len());
    for (method, path) in ops {
        let concrete = path.replace("{id}", "1");
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
        let resp = app.send(m, &concrete, Some(&token), None).await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no route for"),
            "{method} {path} is documented but not routed: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unserved_methods_answer_405_with_allow() {
    let app = spawn_app().await;
    let resp = app.send(Method::DELETE, "/api/fund", None, None).await;
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(allow, "GET");
    assert_problem(resp, 405, "method_not_allowed").await;

    let resp = app
        .send(Method::PATCH, "/api/admin/periods/7", None, None)
        .await;
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("PUT")
    );
    assert_problem(resp, 405, "method_not_allowed").await;

    let resp = app.send(Method::GET, "/api/nowhere", None, None).await;
    assert_problem(resp, 404, "not_found").await;
}

/// The webhook's size limit answers like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_webhook_is_a_problem_413() {
    let app = spawn_app_with_stripe(&[]).await;
    let body = format!("{{\"pad\":\"{}\"}}", "a".repeat(600 * 1024));
    let resp = app
        .client
        .post(format!("{}/webhooks/stripe", app.addr))
        .header("content-type", "application/json")
        .header("Stripe-Signature", "t=1,v1=00")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_problem(resp, 413, "payload_too_large").await;
    let small = crate::localstripe::event("evt_small", "customer.created", json!({}));
    let resp = app.deliver(&small, chrono::Utc::now().timestamp()).await;
    assert_eq!(
        resp.status(),
        200,
        "a signed event within the limit is taken"
    );
}

/// A JSON array is not an object, even where serde would fill a struct from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_bodies_are_refused() {
    let app = spawn_app().await;
    let token = app.token(Role::Admin).await;
    let before = app.fund().await;
    let resp = app
        .send(
            Method::PUT,
            "/api/admin/fund",
            Some(&token),
            Some(&json!(["Renamed", "1.00"])),
        )
        .await;
    assert_problem(resp, 422, "invalid_request").await;
    let resp = app
        .send(
            Method::POST,
            "/api/donations/offline",
            Some(&token),
            Some(&json!([
                "25.00", "Ann Lee", null, "check", null, null, null, null
            ])),
        )
        .await;
    assert_problem(resp, 422, "invalid_request").await;
    assert_eq!(app.fund().await, before, "nothing changed");
    assert_eq!(app.count("donations"), 0);
}

/// The venv's schemathesis (installed by scripts/install-test-peers.sh).
fn schemathesis() -> String {
    let st = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/st");
    assert!(
        std::path::Path::new(st).exists(),
        "schemathesis is not installed: run ./scripts/install-test-peers.sh (./scripts/test.sh does)"
    );
    st.to_owned()
}

/// schemathesis generates requests from `/api/openapi.json` (examples, boundary values,
/// random valid and invalid data, sequences) as an admin, against the app with Stripe
/// (localstripe), and checks every answer: no 5xx, documented status, content type, headers
/// and schema, invalid data refused, valid data accepted, auth not ignored. A fixed seed keeps
/// it reproducible; `scripts/schemathesis.sh` runs longer with a random one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let app = spawn_app_with_stripe(&[]).await;
    let token = app.token(Role::Admin).await;
    // schemathesis keeps a cache in its working directory: not in the repository.
    let workdir = tempfile::tempdir().expect("temp dir");
    let out = tokio::process::Command::new(schemathesis())
        .current_dir(workdir.path())
        .args([
            "--no-color",
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
            "run",
            &format!("{}/api/openapi.json", app.addr),
            "--checks",
            "all",
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--max-examples",
            "8",
            "--seed",
            "20261129",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
        ])
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    let generated = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(generated >= 200, "only {generated} test cases:\n{stdout}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .map(str::trim)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    // Every operation but the three that end the fuzzer's own session (tests/schemathesis.toml;
    // tests/api/staff.rs covers them).
    const SESSION_ENDERS: u64 = 3;
    let selected = field("Selected:");
    let total: u64 = selected
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    let tested = total.saturating_sub(SESSION_ENDERS);
    assert!(
        total > SESSION_ENDERS
            && selected == format!("{tested}/{total}")
            && field("Tested:") == tested.to_string(),
        "not every operation was tested:\n{stdout}"
    );
    let report = app.verify();
    assert!(
        report.is_ok(),
        "the ledger still verifies: {:?}",
        report.problems
    );
}
