//! A Stripe slower than the request deadline (issue 18, item 6): a real delaying HTTP proxy in
//! front of localstripe holds the answer to PaymentIntent creation (`POST /v1/payment_intents`)
//! past the app's `REQUEST_TIMEOUT`. The donor's retry with the same `Idempotency-Key` must get
//! the same donation and the same intent once Stripe answers, and a strict-mode reservation
//! whose intent never comes must be released promptly, not after `RESERVATION_TTL`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use crowdledger::db::DbConn;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with_stripe};

/// What the proxy shares with its handler.
struct ProxyState {
    /// localstripe's base URL, set once the app (and its localstripe) has started.
    upstream: Mutex<String>,
    /// How long after its arrival a PaymentIntent creation is answered (at the earliest).
    create_delay: Mutex<Duration>,
    /// PaymentIntent creations forwarded to localstripe.
    creates: AtomicUsize,
    client: reqwest::Client,
}

/// A real HTTP proxy in front of localstripe that answers PaymentIntent creation late. The
/// creation itself reaches localstripe at once: only its answer is held, as when Stripe has
/// made the intent but its answer is slow to come back.
struct SlowStripe {
    base: String,
    state: web::Data<ProxyState>,
    handle: actix_web::dev::ServerHandle,
}

impl SlowStripe {
    async fn start() -> SlowStripe {
        let state = web::Data::new(ProxyState {
            upstream: Mutex::new(String::new()),
            create_delay: Mutex::new(Duration::ZERO),
            creates: AtomicUsize::new(0),
            client: reqwest::Client::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = state.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(shared.clone())
                .default_service(web::to(forward))
        })
        .workers(1)
        .listen(listener)
        .expect("proxy listens")
        .shutdown_timeout(0)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        SlowStripe {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    fn set_upstream(&self, base: &str) {
        *self.state.upstream.lock().expect("upstream") = base.to_owned();
    }

    fn delay_creates(&self, delay: Duration) {
        *self.state.create_delay.lock().expect("delay") = delay;
    }

    fn creates(&self) -> usize {
        self.state.creates.load(Ordering::SeqCst)
    }
}

impl Drop for SlowStripe {
    fn drop(&mut self) {
        // Not graceful: a held answer must not keep the test waiting.
        drop(self.handle.stop(false));
    }
}

async fn forward(req: HttpRequest, body: web::Bytes, st: web::Data<ProxyState>) -> HttpResponse {
    let arrived = tokio::time::Instant::now();
    let create =
        req.method() == actix_web::http::Method::POST && req.path() == "/v1/payment_intents";
    let delay = if create {
        st.creates.fetch_add(1, Ordering::SeqCst);
        *st.create_delay.lock().expect("delay")
    } else {
        Duration::ZERO
    };
    let upstream = st.upstream.lock().expect("upstream").clone();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method =
        reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("HTTP method");
    let mut out = st
        .client
        .request(method, format!("{upstream}{path}"))
        .body(body.to_vec());
    for (name, value) in req.headers() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = out.send().await;
    tokio::time::sleep_until(arrived + delay).await;
    match answer {
        Ok(r) => {
            let status = actix_web::http::StatusCode::from_u16(r.status().as_u16())
                .expect("status from localstripe");
            let content_type = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let bytes = r.bytes().await.unwrap_or_default();
            HttpResponse::build(status)
                .content_type(content_type)
                .body(bytes.to_vec())
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

/// Starts the proxy, then the app against it (with `env`), then points the proxy at the
/// app's localstripe.
async fn app_behind_slow_stripe(env: &[(&str, &str)]) -> (TestApp, SlowStripe) {
    let proxy = SlowStripe::start().await;
    let mut vars = vec![("STRIPE_API_BASE", proxy.base.as_str())];
    vars.extend_from_slice(env);
    let app = spawn_app_with_stripe(&vars).await;
    proxy.set_upstream(&app.stripe.as_ref().expect("localstripe").base);
    (app, proxy)
}

/// `POST /api/donations` with an `Idempotency-Key`.
async fn donate_with_key(app: &TestApp, amount: &str, key: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/donations", app.addr))
        .header("Idempotency-Key", key)
        .json(&json!({
            "amount": amount, "donor_name": "Wong Siu Ling", "email": "siuling@example.org",
            "anonymous": false, "locale": "zh-CN",
        }))
        .send()
        .await
        .expect("donation request")
}

/// (id, PaymentIntent) of every donation, read directly from the database.
fn donations(app: &TestApp) -> Vec<(i64, Option<String>)> {
    donations_in(&mut app.conn())
}

fn donations_in(conn: &mut DbConn) -> Vec<(i64, Option<String>)> {
    use crowdledger::db::schema::donations;
    donations::table
        .select((donations::id, donations::payment_intent_id))
        .order(donations::id)
        .load(conn)
        .expect("donations")
}

/// The fund's strict-mode reservations, minor units, read directly from the database.
fn reserved_minor(app: &TestApp) -> i64 {
    reserved_minor_in(&mut app.conn())
}

fn reserved_minor_in(conn: &mut DbConn) -> i64 {
    use crowdledger::db::schema::funds;
    funds::table
        .select(funds::reserved_minor)
        .first(conn)
        .expect("fund row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_same_donation_and_intent_once_a_slow_stripe_answers() {
    // Deadline 3 s; Stripe answers the creation after 4.5 s, within the 6 s the app gives it.
    let (app, proxy) = app_behind_slow_stripe(&[
        ("REQUEST_TIMEOUT", "3s"),
        ("FUND_TARGET", "100.00"),
        ("FUND_CAP_MODE", "strict"),
        ("RESERVATION_TTL", "10m"),
    ])
    .await;
    proxy.delay_creates(Duration::from_millis(4500));
    let first = donate_with_key(&app, "60.00", "donor-slow-1").await;
    assert_problem(first, 503, "timeout").await;

    // The donor retries at once, while Stripe is still working on the first request.
    let retry = donate_with_key(&app, "60.00", "donor-slow-1").await;
    let status = retry.status();
    let text = retry.text().await.expect("body");
    assert_eq!(status, 201, "the retry with the same key: {text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let secret = body["client_secret"].as_str().expect("client_secret");
    let pi = secret.split("_secret_").next().expect("pi id").to_owned();
    let id = body["donation_id"].as_i64().expect("donation id");
    assert_eq!(body["amount"], "60.00");
    assert_eq!(
        donations(&app),
        vec![(id, Some(pi.clone()))],
        "one donation, tied to the intent the retry was given"
    );
    assert_eq!(
        proxy.creates(),
        1,
        "one PaymentIntent was created at Stripe"
    );
    assert_eq!(
        reserved_minor(&app),
        6000,
        "the slow intent's reservation is held"
    );

    // Another retry replays the same answer, with the same client secret.
    let again = donate_with_key(&app, "60.00", "donor-slow-1").await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, body);
    let refused = assert_problem(app.donate("40.01").await, 409, "exceeds_remaining").await;
    assert_eq!(refused["remaining"], "40.00");

    // The intent the donor holds is the real one: paying it records the gift.
    let ls = app.stripe.as_ref().expect("localstripe");
    assert_eq!(ls.confirm(&pi).await, "succeeded");
    let fund = app.wait_for_fund(|f| f["raised"] == "60.00").await;
    assert_eq!(fund["raised"], "60.00");
    assert_eq!(app.donation_status(id), "succeeded");
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_reservation_whose_intent_never_comes_is_released_promptly() {
    // Deadline 2 s: the app gives Stripe 4 s.
    let (app, proxy) = app_behind_slow_stripe(&[
        ("REQUEST_TIMEOUT", "2s"),
        ("FUND_TARGET", "100.00"),
        ("FUND_CAP_MODE", "strict"),
        ("RESERVATION_TTL", "10m"),
    ])
    .await;
    // Stripe's answer to any creation does not come within this test.
    proxy.delay_creates(Duration::from_secs(600));
    let first = donate_with_key(&app, "70.00", "donor-gone-1").await;
    assert_problem(first, 503, "timeout").await;
    let refused = assert_problem(app.donate("40.00").await, 409, "exceeds_remaining").await;
    assert_eq!(
        refused["remaining"], "30.00",
        "reserved while it may still come"
    );

    // Released well before RESERVATION_TTL (10 minutes).
    let mut left = (donations(&app), reserved_minor(&app));
    for _ in 0..150 {
        if left == (vec![], 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = (donations(&app), reserved_minor(&app));
    }
    assert_eq!(
        left,
        (vec![], 0),
        "(donations, reserved minor units) 15 s after the request died"
    );

    // Stripe is fast again: the same key is free for a new attempt.
    proxy.delay_creates(Duration::ZERO);
    let retry = donate_with_key(&app, "70.00", "donor-gone-1").await;
    let status = retry.status();
    let text = retry.text().await.expect("body");
    assert_eq!(status, 201, "the retry with the same key: {text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let id = body["donation_id"].as_i64().expect("donation id");
    let pi = body["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("client_secret")
        .to_owned();
    assert_eq!(donations(&app), vec![(id, Some(pi))]);
    assert_eq!(reserved_minor(&app), 7000);
    assert!(app.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donation_left_without_an_intent_by_a_crash_is_released_and_its_key_freed() {
    use crowdledger::ledger::card::{CardGift, CreateCardDonation, Created};
    use crowdledger::ledger::ops::Idempotency;
    use sha2::{Digest, Sha256};

    let ls = crate::localstripe::LocalStripe::start().await;
    let (db_url, _dir) = crate::helpers::fresh_database();
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", crate::helpers::url_text(&db_url)),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("JWT_SECRET", crate::helpers::JWT_SECRET.to_owned()),
        ("HTTP_WORKERS", "1".to_owned()),
        ("DATABASE_POOL_SIZE", "2".to_owned()),
        (
            "STRIPE_SECRET_KEY",
            crate::localstripe::SECRET_KEY.to_owned(),
        ),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_crowdledger".to_owned()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_crash".to_owned()),
        ("STRIPE_API_BASE", ls.base.clone()),
        ("REQUEST_TIMEOUT", "1s".to_owned()),
        ("FUND_TARGET", "100.00".to_owned()),
        ("FUND_CAP_MODE", "strict".to_owned()),
        ("RESERVATION_TTL", "10m".to_owned()),
    ]);
    let config = crowdledger::config::Config::from_lookup(|k| vars.get(k).cloned())
        .expect("test config is valid");
    let running = crowdledger::http::start(config).expect("app starts");
    let addr = format!("http://127.0.0.1:{}", running.port);
    let shutdown = running.shutdown.clone();
    let state = running.state.clone();
    tokio::spawn(running.server);

    // What a donation request leaves behind when its process dies before Stripe answers: the
    // pending donation, its reservation and its key in progress, and no task to finish them.
    let gift = CardGift {
        amount: crowdledger::money::DonationAmount::parse(
            "70.00",
            crowdledger::money::Currency::USD,
            crowdledger::money::AmountBounds {
                min_minor: 100,
                max_minor: 10_000_000,
            },
        )
        .expect("amount"),
        amount_minor: 7000,
        donor_name: "Wong Siu Ling".into(),
        email: "siuling@example.org".into(),
        anonymous: false,
        locale: "zh-CN".into(),
        fee_covered_minor: 0,
    };
    let request_hash = hex::encode(Sha256::digest(serde_json::to_vec(&gift).expect("json")));
    let created = state
        .writer
        .submit(CreateCardDonation {
            gift,
            idempotency: Some(Idempotency {
                scope_key: "donation:donor-crash-1".into(),
                request_hash,
            }),
            reservation_ttl: chrono::Duration::minutes(10),
        })
        .await
        .expect("donation created");
    let Created::New { donation_id } = created else {
        panic!("a new donation")
    };
    let mut conn = crowdledger::db::establish(&db_url).expect("database");
    assert_eq!(reserved_minor_in(&mut conn), 7000);

    // The sweep takes it for orphaned a few seconds after the 2 s budget, not after 10 minutes.
    let mut left = (donations_in(&mut conn), reserved_minor_in(&mut conn));
    for _ in 0..200 {
        if left == (vec![], 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = (donations_in(&mut conn), reserved_minor_in(&mut conn));
    }
    assert_eq!(
        left,
        (vec![], 0),
        "(donations, reserved minor units) 20 s after the crash"
    );

    // The donor's retry with the same key starts afresh.
    let retry = reqwest::Client::new()
        .post(format!("{addr}/api/donations"))
        .header("Idempotency-Key", "donor-crash-1")
        .json(&json!({
            "amount": "70.00", "donor_name": "Wong Siu Ling", "email": "siuling@example.org",
            "anonymous": false, "locale": "zh-CN",
        }))
        .send()
        .await
        .expect("donation request");
    let status = retry.status();
    let text = retry.text().await.expect("body");
    assert_eq!(status, 201, "the retry with the same key: {text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_ne!(body["donation_id"].as_i64(), Some(donation_id));
    assert_eq!(reserved_minor_in(&mut conn), 7000);
    shutdown.shutdown();
}
