//! The donor and admin pages in Debian's Chromium, driven by Playwright (tests/browser/run.mjs)
//! against the real app and localstripe. Screenshots land in target/browser-<engine>/.

use crowdledger::auth::Role;

use crate::helpers::{PASSWORD, engine_is_postgres, spawn_app_with_stripe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donors_and_admins_use_the_pages_in_a_real_browser() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/tests/browser/run.mjs");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/browser/node_modules/playwright-core"
        ))
        .exists(),
        "playwright-core is not installed: run ./scripts/install-test-peers.sh (./scripts/test.sh does)"
    );
    let sink = crate::smtp::SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with_stripe(&[
        ("FUND_TARGET", "5000.00"),
        ("FUND_NAME", "Chinatown Legal Defense Fund"),
        ("SMTP_URL", &smtp),
        ("FEE_COVER", "on"),
        ("PAYMENT_METHODS", "card,us_bank_account,alipay,wechat_pay"),
        // One machine signs two admins in a dozen times a minute (a password and a code
        // each); the login limits have their own tests.
        ("RATE_LIMIT_LOGIN", "200/min"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "200/15m"),
    ])
    .await;
    let admin_email = app.user(Role::Admin);
    let second_admin = app.user(Role::Admin);
    let stripe = app.stripe.as_ref().expect("stripe");
    let shots = format!(
        "{root}/target/browser-{}",
        if engine_is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("APP_URL", &app.addr)
        .env("STRIPE_URL", &stripe.base)
        .env("ADMIN_EMAIL", &admin_email)
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("SECOND_ADMIN_EMAIL", &second_admin)
        .env("SMTP_DIR", sink.dir())
        .env("SHOT_DIR", &shots)
        .output()
        .await
        .expect("run node tests/browser/run.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
