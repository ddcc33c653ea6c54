//! The limiters, the body reader and the deadline, without a server.

use super::*;
use actix_web::dev::Service;
use actix_web::{App, HttpResponse, test as actix_test};

#[test]
fn a_burst_is_allowed_then_refused_with_a_wait() {
    let l = limiter::<IpAddr>(Some(Rate {
        burst: 3,
        period: Duration::from_secs(60),
    }))
    .expect("limiter");
    let clock = DefaultClock::default();
    let a: IpAddr = "203.0.113.1".parse().expect("ip");
    let b: IpAddr = "203.0.113.2".parse().expect("ip");
    for _ in 0..3 {
        assert!(take(Some(&l), &a, &clock).is_ok());
    }
    let err = take(Some(&l), &a, &clock).expect_err("fourth is refused");
    assert_eq!(err.code, ErrorCode::RateLimited);
    // One request's worth of the period is 20 s; the wait is whole seconds, rounded up.
    let wait = err.extra.as_ref().and_then(|e| e["retry_after"].as_u64());
    assert!(wait.is_some_and(|w| (19..=20).contains(&w)), "{wait:?}");
    // Another client is untouched.
    assert!(take(Some(&l), &b, &clock).is_ok());
    // No limiter, no limit.
    assert!(take::<IpAddr>(None, &a, &clock).is_ok());
}

#[test]
fn account_keys_are_normalised_and_bounded() {
    let config = LimitsConfig {
        donations: None,
        login: None,
        login_account: Some(Rate {
            burst: 2,
            period: Duration::from_secs(60),
        }),
        lookup: None,
        lookup_email: None,
        public_ledger: None,
        proxy: None,
        request_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_secs(1),
    };
    let limits = Limits::new(&config);
    assert!(limits.login_account("Ann@Example.org").is_ok());
    assert!(limits.login_account(" ann@example.org ").is_ok());
    assert!(limits.login_account("ann@example.org").is_err());
    let long = "長".repeat(200);
    assert!(limits.login_account(&long).is_ok());
    assert_eq!(limits.tracked(), 2);
    // A sweep keeps keys whose buckets are still draining.
    limits.sweep();
    assert_eq!(limits.tracked(), 2);
}

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(5)).await;
    HttpResponse::Ok().finish()
}

async fn trickle() -> HttpResponse {
    // Ten chunks 100 ms apart: the whole body takes twice the deadline.
    let chunks = futures_util::stream::iter(0..10).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, actix_web::Error>(Bytes::from(format!("chunk {i}\n")))
    });
    HttpResponse::Ok().streaming(chunks)
}

#[actix_web::test]
async fn the_deadline_stops_slow_handlers_but_not_streamed_bodies() {
    let limit = Duration::from_millis(500);
    let app = actix_test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                let path = req.path().to_owned();
                within_deadline(limit, path, srv.call(req))
            })
            .route("/slow", web::get().to(slow))
            .route("/stream", web::get().to(trickle)),
    )
    .await;
    let started = std::time::Instant::now();
    let err = app
        .call(actix_test::TestRequest::get().uri("/slow").to_request())
        .await
        .expect_err("stopped at the deadline");
    assert!(started.elapsed() < Duration::from_secs(4));
    let resp = err.error_response();
    assert_eq!(resp.status(), 503);
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["code"], "timeout");

    let resp = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/stream").to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = actix_test::read_body(resp).await;
    assert_eq!(
        body.iter().filter(|b| **b == b'\n').count(),
        10,
        "every chunk arrived"
    );
}
