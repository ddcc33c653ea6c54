//! `spawn_app()`: the real service on a free port against a fresh database of the engine
//! chosen by `TEST_DATABASE` (`sqlite`, the default, or `postgres`), and one helper per
//! endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crowdledger::auth::{Email, Role};
use crowdledger::config::{Config, DatabaseUrl};
use crowdledger::db::{self, DbConn};
use crowdledger::ledger::verify::{VerifyReport, verify};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;

/// The JWT secret every test app signs with.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-0123456789";
/// Password of the users the helpers create.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Its database.
    pub db_url: DatabaseUrl,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The fake Stripe, for apps started with one.
    pub stripe: Option<crate::localstripe::LocalStripe>,
    /// The webhook signing secret, for apps started with Stripe.
    pub webhook_secret: String,
    /// Users created so far (numbers their emails, so outputs are reproducible).
    users: AtomicU64,
    /// Second factors the helpers enrolled, by email: the secret and unused recovery codes.
    pub enrolled: std::sync::Mutex<HashMap<String, Enrolled>>,
    shutdown: crowdledger::http::Shutdown,
    _dir: Option<tempfile::TempDir>,
}

/// A second factor a helper enrolled.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The TOTP secret (base32).
    pub secret: String,
    /// Recovery codes not used yet.
    pub recovery_codes: Vec<String>,
}

/// Which engine this test run uses.
pub fn engine_is_postgres() -> bool {
    std::env::var("TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty database: a new SQLite file, or a new PostgreSQL database.
pub fn fresh_database() -> (DatabaseUrl, Option<tempfile::TempDir>) {
    if engine_is_postgres() {
        let base = postgres_base();
        let name = format!(
            "cl_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        let mut admin = PgConnection::establish(&base).expect("PostgreSQL reachable for tests");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let (prefix, _) = base.rsplit_once('/').expect("postgres url has a database");
        (DatabaseUrl::Postgres(format!("{prefix}/{name}")), None)
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ledger.db");
        (DatabaseUrl::Sqlite(path.display().to_string()), Some(dir))
    }
}

/// A database URL as `DATABASE_URL` takes it.
pub fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

/// Starts the app with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with extra environment settings (e.g. `FUND_TARGET`).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn(env, None).await
}

/// Starts a localstripe, then the app configured for it, then registers the app's webhook.
pub async fn spawn_app_with_stripe(env: &[(&str, &str)]) -> TestApp {
    let ls = crate::localstripe::LocalStripe::start().await;
    let app = spawn(env, Some(ls)).await;
    app.register_webhook().await;
    app
}

async fn spawn(env: &[(&str, &str)], stripe: Option<crate::localstripe::LocalStripe>) -> TestApp {
    let (db_url, dir) = fresh_database();
    let webhook_secret = format!("whsec_test_{}", rand::random::<u64>());
    spawn_on(db_url, dir, webhook_secret, env, stripe).await
}

impl TestApp {
    /// Stops this app and starts a new one on the same database and fake Stripe (its webhook
    /// registered again), with `env` over the test defaults: a restart with new settings.
    pub async fn restart_with(mut self, env: &[(&str, &str)]) -> TestApp {
        self.shutdown.shutdown();
        let (db_url, dir, stripe) = (self.db_url.clone(), self._dir.take(), self.stripe.take());
        let secret = self.webhook_secret.clone();
        let enrolled = std::mem::take(&mut *self.enrolled.lock().expect("enrolled"));
        drop(self);
        let app = spawn_on(db_url, dir, secret, env, stripe).await;
        *app.enrolled.lock().expect("enrolled") = enrolled;
        app.register_webhook().await;
        app
    }

    /// Points the fake Stripe's webhook (if any) at this app.
    async fn register_webhook(&self) {
        if let Some(ls) = &self.stripe {
            ls.register_webhook(
                &format!("{}/webhooks/stripe", self.addr),
                &self.webhook_secret,
            )
            .await;
        }
    }
}

/// Starts the app on an existing database (e.g. one a test restored).
pub async fn spawn_on(
    db_url: DatabaseUrl,
    dir: Option<tempfile::TempDir>,
    webhook_secret: String,
    env: &[(&str, &str)],
    stripe: Option<crate::localstripe::LocalStripe>,
) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), url_text(&db_url)),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        ("HTTP_WORKERS".into(), "2".into()),
        ("DATABASE_POOL_SIZE".into(), "3".into()),
    ]);
    if let Some(ls) = &stripe {
        vars.insert(
            "STRIPE_SECRET_KEY".into(),
            crate::localstripe::SECRET_KEY.into(),
        );
        vars.insert(
            "STRIPE_PUBLISHABLE_KEY".into(),
            "pk_test_crowdledger".into(),
        );
        vars.insert("STRIPE_WEBHOOK_SECRET".into(), webhook_secret.clone());
        vars.insert("STRIPE_API_BASE".into(), ls.base.clone());
        vars.insert(
            "STRIPE_JS_URL".into(),
            format!("{}/js.stripe.com/v3/", ls.base),
        );
    }
    for (k, v) in env {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid");
    let running = crowdledger::http::start(config).expect("app starts");
    let addr = format!("http://127.0.0.1:{}", running.port);
    let shutdown = running.shutdown.clone();
    tokio::spawn(running.server);
    TestApp {
        addr,
        db_url,
        client: reqwest::Client::new(),
        stripe,
        webhook_secret,
        users: AtomicU64::new(1),
        enrolled: std::sync::Mutex::default(),
        shutdown,
        _dir: dir,
    }
}

impl Drop for TestApp {
    /// Stops the server so its connections close (PostgreSQL has a connection limit, and one
    /// test process starts dozens of apps).
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

impl TestApp {
    /// A new connection to the app's database.
    pub fn conn(&self) -> DbConn {
        db::establish(&self.db_url).expect("test database reachable")
    }

    /// Recomputes the ledger.
    pub fn verify(&self) -> VerifyReport {
        verify(&mut self.conn()).expect("verify runs")
    }

    /// Creates a user with `role` (password [`PASSWORD`]) and returns its email.
    pub fn user(&self, role: Role) -> String {
        let n = self.users.fetch_add(1, Ordering::SeqCst);
        let email = format!("{}-{n}@example.org", role.as_str());
        crowdledger::auth::add_user(
            &mut self.conn(),
            &Email::parse(&email).expect("email"),
            role,
            PASSWORD,
        )
        .expect("user added");
        email
    }

    /// Creates a user with `role` and returns a bearer token from the login endpoint.
    pub async fn token(&self, role: Role) -> String {
        let email = self.user(role);
        login(self, &email).await
    }

    /// `GET /api/fund`.
    pub async fn fund(&self) -> Value {
        self.client
            .get(format!("{}/api/fund", self.addr))
            .send()
            .await
            .expect("fund request")
            .json()
            .await
            .expect("fund json")
    }

    /// `POST /api/donations/offline`.
    /// Records one offline gift of each amount (no idempotency key); each must be accepted.
    pub async fn record_gifts(&self, token: &str, amounts: &[&str]) {
        for amount in amounts {
            let status = self.post_offline(token, &gift(amount), None).await.status();
            assert_eq!(status, 201, "offline gift of {amount}");
        }
    }

    pub async fn post_offline(
        &self,
        token: &str,
        body: &Value,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/api/donations/offline", self.addr))
            .bearer_auth(token)
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("offline request")
    }

    /// Any JSON request with a bearer token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{path}", self.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request")
    }

    /// `POST /api/donations` (public).
    pub async fn donate(&self, amount: &str) -> reqwest::Response {
        let body = serde_json::json!({
            "amount": amount, "donor_name": "Mei Chen", "email": "mei@example.org",
            "anonymous": false, "locale": "zh-CN",
        });
        self.send(reqwest::Method::POST, "/api/donations", None, Some(&body))
            .await
    }

    /// Sends `event` to the webhook, signed with the app's secret at `at` (Unix seconds).
    pub async fn deliver(&self, event: &Value, at: i64) -> reqwest::Response {
        let body = event.to_string();
        let sig = crowdledger::payments::signature::sign(
            self.webhook_secret.as_bytes(),
            at,
            body.as_bytes(),
        );
        self.client
            .post(format!("{}/webhooks/stripe", self.addr))
            .header("Stripe-Signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook request")
    }

    /// Runs the `crowdledger` binary on this app's database (and its Stripe, if any).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        self.cli_command(args, env)
            .output()
            .expect("run crowdledger")
    }

    /// The `crowdledger` command [`TestApp::cli`] runs, for a test that starts it itself.
    pub fn cli_command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crowdledger"));
        cmd.args(args).env("DATABASE_URL", self.database_url());
        if let Some(ls) = &self.stripe {
            cmd.env("STRIPE_SECRET_KEY", crate::localstripe::SECRET_KEY)
                .env("STRIPE_PUBLISHABLE_KEY", "pk_test_crowdledger")
                .env("STRIPE_WEBHOOK_SECRET", &self.webhook_secret)
                .env("STRIPE_API_BASE", &ls.base);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The database URL as the CLI takes it.
    pub fn database_url(&self) -> String {
        url_text(&self.db_url)
    }

    /// Polls `/api/fund` until `check` holds (up to ~10 s); returns the last document.
    pub async fn wait_for_fund(&self, check: impl Fn(&Value) -> bool) -> Value {
        let mut fund = self.fund().await;
        for _ in 0..100 {
            if check(&fund) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            fund = self.fund().await;
        }
        fund
    }

    /// One column of one donation, read directly from the database.
    pub fn donation_status(&self, id: i64) -> String {
        use crowdledger::db::schema::donations;
        donations::table
            .find(id)
            .select(donations::status)
            .first::<String>(&mut self.conn())
            .expect("donation exists")
    }

    /// `GET path` with a bearer token; the JSON answer.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
            .json()
            .await
            .expect("json")
    }

    /// `PUT /api/admin/intake`.
    pub async fn put_intake(
        &self,
        token: &str,
        accepting: bool,
        message: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({ "accepting": accepting, "message": message });
        self.send(
            reqwest::Method::PUT,
            "/api/admin/intake",
            Some(token),
            Some(&body),
        )
        .await
    }

    /// `PUT /api/admin/fund`.
    pub async fn put_fund(&self, token: &str, body: &Value) -> reqwest::Response {
        self.send(
            reqwest::Method::PUT,
            "/api/admin/fund",
            Some(token),
            Some(body),
        )
        .await
    }

    /// `POST /api/admin/periods`.
    pub async fn add_period(
        &self,
        token: &str,
        label: &str,
        from: &str,
        to: &str,
        budget: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({ "label": label, "starts_on": from, "ends_on": to, "budget": budget });
        self.send(
            reqwest::Method::POST,
            "/api/admin/periods",
            Some(token),
            Some(&body),
        )
        .await
    }

    /// Rows in a table, counted directly in the database.
    pub fn count(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<N>(&mut self.conn())
            .expect("count")
            .n
    }
}

/// Creates a pending card donation through `writer`, as the card endpoint does, and attaches
/// PaymentIntent `pi` to it; returns the donation's id.
pub async fn pending_card_donation(
    writer: &crowdledger::ledger::LedgerWriter,
    gift: crowdledger::ledger::card::CardGift,
    pi: &str,
) -> i64 {
    use crowdledger::ledger::card::{AttachIntent, CreateCardDonation, Created};
    let created = writer
        .submit(CreateCardDonation {
            gift,
            idempotency: None,
            reservation_ttl: chrono::Duration::hours(2),
        })
        .await
        .expect("donation created");
    let Created::New { donation_id } = created else {
        panic!("a new donation")
    };
    writer
        .submit(AttachIntent {
            donation_id,
            payment_intent: pi.to_owned(),
            remember: None,
            method_type: Some("card".into()),
        })
        .await
        .expect("intent attached");
    donation_id
}

/// A typical offline gift.
pub fn gift(amount: &str) -> Value {
    serde_json::json!({ "amount": amount, "donor_name": "Ann Lee", "method": "check", "reference": "1001" })
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
/// Logs `email` in (password [`PASSWORD`]) and returns the bearer token.
pub async fn login(app: &TestApp, email: &str) -> String {
    let body = login_answer(app, email, PASSWORD).await;
    if body["mfa_required"] == true {
        // A second login of an account a helper enrolled: one of its recovery codes (each
        // works once; a TOTP code could not be used twice within its 30 seconds).
        let code = {
            let mut enrolled = app.enrolled.lock().expect("enrolled");
            let e = enrolled
                .get_mut(email)
                .expect("an account enrolled by a helper");
            e.recovery_codes.pop().expect("a recovery code left")
        };
        let body = app
            .post_json(
                "/api/auth/mfa",
                None,
                &serde_json::json!({ "mfa_token": body["mfa_token"], "code": code }),
            )
            .await;
        return body["access_token"].as_str().expect("token").to_owned();
    }
    let token = body["access_token"].as_str().expect("token").to_owned();
    if body["enrolment_required"] == true {
        return enrol(app, email, &token).await;
    }
    token
}

/// The answer of `POST /api/auth/login` (which must be 200).
pub async fn login_answer(app: &TestApp, email: &str, password: &str) -> Value {
    let resp = app
        .client
        .post(format!("{}/api/auth/login", app.addr))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200, "{email} logs in");
    resp.json().await.expect("login json")
}

/// The TOTP code of `secret` now.
pub fn totp_now(secret: &str) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970");
    crowdledger::auth::totp::code_at(secret, now).expect("code")
}

/// Enrols a second factor with an enrolment-only token (as an authenticator app would, from
/// the secret the server shows); remembers it; returns the full token.
pub async fn enrol(app: &TestApp, email: &str, token: &str) -> String {
    let started = app
        .post_json("/api/auth/2fa/enrol", Some(token), &serde_json::json!({}))
        .await;
    let secret = started["secret"].as_str().expect("secret").to_owned();
    let confirmed = app
        .post_json(
            "/api/auth/2fa/confirm",
            Some(token),
            &serde_json::json!({ "code": totp_now(&secret) }),
        )
        .await;
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes");
    app.enrolled.lock().expect("enrolled").insert(
        email.to_owned(),
        Enrolled {
            secret,
            recovery_codes: codes,
        },
    );
    confirmed["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

impl TestApp {
    /// Knows the second factors `from` enrolled (its database was copied here).
    pub fn carry_second_factors(&self, from: &TestApp) {
        let theirs = from.enrolled.lock().expect("enrolled").clone();
        self.enrolled.lock().expect("enrolled").extend(theirs);
    }

    /// `POST path` with a JSON body (and a token), which must answer 2xx; its JSON.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Value {
        let mut req = self.client.post(format!("{}{path}", self.addr)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "POST {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        }
    }
}

pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = resp.json().await.expect("problem json");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status);
    body
}
