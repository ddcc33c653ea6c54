//! `GET /metrics`: the service's figures in Prometheus text format, with the `prometheus`
//! crate (no default features: no protobuf, no process collector; a small, maintained crate
//! whose counters and histograms are atomics, so observing on the hot paths takes no lock).
//!
//! Each started service has its own registry (tests start many services in one process, and
//! each must count only its own). Counters and histograms are observed where things happen:
//! the request log (requests by route and status, latency), the writer after each commit
//! (batch size, commit latency), the webhook handler (events by type and outcome), the rate
//! limits (refusals). The rest is read when scraped: the outbox counts from the database,
//! intake, raised and target from the writer's in-memory snapshot.
//!
//! Never public by default: served on the main port only with `METRICS_TOKEN` (bearer), and
//! on the private `METRICS_ADDR` listener when that is set (see `config::MetricsConfig`).

use std::time::Duration;

use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sha2::{Digest, Sha256};

use super::{AppState, State};
use crate::domain::IntakeState;
use crate::error::{AppError, ErrorCode};
use crate::ledger::card::EventOutcome;
use crate::ledger::{WriterHistograms, WriterStats};

/// Stripe event types the ledger acts on; any other type is counted as `other`, so a label
/// never takes an unbounded set of values.
const EVENT_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "payout.paid",
];

/// The collectors of one service.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    webhooks: IntCounterVec,
    rate_limited: IntCounterVec,
    outbox: IntGaugeVec,
    intake: IntGaugeVec,
    raised: IntGauge,
    target: IntGauge,
    backup_at: IntGauge,
    backup_seq: IntGauge,
    backup_failures: IntCounter,
}

impl Metrics {
    /// Makes the collectors and registers them, with the writer's histograms (which the
    /// writer then observes after each commit).
    pub fn new(writer: &WriterStats) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("crowdledger_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "crowdledger_http_request_duration_seconds",
                "Time from a request's arrival to its response head",
            ),
            &["route"],
        )?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "crowdledger_webhook_events_total",
                "Signed Stripe webhook events recorded, by type and outcome",
            ),
            &["type", "outcome"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "crowdledger_rate_limited_total",
                "Requests refused with 429 by a rate limit",
            ),
            &["limit"],
        )?;
        let outbox = IntGaugeVec::new(
            Opts::new(
                "crowdledger_outbox_messages",
                "Emails in the outbox by state",
            ),
            &["state"],
        )?;
        let intake = IntGaugeVec::new(
            Opts::new(
                "crowdledger_intake_state",
                "1 for the fund's current intake state",
            ),
            &["state"],
        )?;
        let raised = IntGauge::new(
            "crowdledger_fund_raised_minor",
            "Raised, in minor units of the fund's currency",
        )?;
        let target = IntGauge::new(
            "crowdledger_fund_target_minor",
            "Target, in minor units of the fund's currency",
        )?;
        let backup_at = IntGauge::new(
            "crowdledger_backup_last_success_timestamp_seconds",
            "Unix time of the last scheduled backup written (0: none since the start)",
        )?;
        let backup_seq = IntGauge::new(
            "crowdledger_backup_last_head_seq",
            "Ledger seq the last scheduled backup ended at",
        )?;
        let backup_failures = IntCounter::new(
            "crowdledger_backup_failures_total",
            "Scheduled backups that failed (each is retried)",
        )?;
        let made = WriterHistograms {
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "crowdledger_writer_batch_size",
                    "Commands per committed writer batch",
                )
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 10)?),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "crowdledger_writer_commit_seconds",
                    "Seconds from a writer batch's first statement to its commit",
                )
                .buckets(prometheus::exponential_buckets(0.000_1, 2.0, 15)?),
            )?,
        };
        let histograms = writer.histograms.get_or_init(|| made);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(outbox.clone()))?;
        registry.register(Box::new(intake.clone()))?;
        registry.register(Box::new(raised.clone()))?;
        registry.register(Box::new(target.clone()))?;
        registry.register(Box::new(backup_at.clone()))?;
        registry.register(Box::new(backup_seq.clone()))?;
        registry.register(Box::new(backup_failures.clone()))?;
        registry.register(Box::new(histograms.batch_size.clone()))?;
        registry.register(Box::new(histograms.commit_seconds.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            webhooks,
            rate_limited,
            outbox,
            intake,
            raised,
            target,
            backup_at,
            backup_seq,
            backup_failures,
        })
    }

    /// Counts one answered request (the route pattern, never the raw path).
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // Only the standard methods are labels; anything else is `other`.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// Counts one webhook event the writer recorded.
    pub fn webhook(&self, event_type: &str, outcome: EventOutcome) {
        let event_type = EVENT_TYPES
            .iter()
            .find(|t| **t == event_type)
            .copied()
            .unwrap_or("other");
        self.webhooks
            .with_label_values(&[event_type, outcome_label(outcome)])
            .inc();
    }

    /// Counts a request refused by the rate limit `limit` (`donation`, `login`, `account`).
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }
}

fn outcome_label(outcome: EventOutcome) -> &'static str {
    match outcome {
        EventOutcome::Applied => "applied",
        EventOutcome::Duplicate => "duplicate",
        EventOutcome::Kept => "kept",
        EventOutcome::Ignored => "ignored",
        EventOutcome::NotOurs => "not_ours",
        EventOutcome::Foreign => "foreign",
        EventOutcome::Mismatch => "mismatch",
    }
}

/// True when `req` carries `Authorization: Bearer <token>` for the configured token (compared
/// as digests, so the time taken says nothing about the token).
fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| Sha256::digest(given.trim()) == Sha256::digest(token))
}

/// `GET /metrics`: 401 without a bearer token and 403 with a wrong one when `METRICS_TOKEN`
/// is set; the text format otherwise.
pub(super) async fn scrape(state: State, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(token) = &state.config.metrics.token {
        if req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .is_none()
        {
            return Err(AppError::new(
                ErrorCode::Unauthorized,
                "the metrics token is required (Authorization: Bearer ...)",
            ));
        }
        if !bearer_matches(&req, token.as_str()) {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "this is not the metrics token",
            ));
        }
    }
    let counts = super::with_conn(&state, crate::mail::outbox::counts).await?;
    let m = &state.metrics;
    m.outbox.with_label_values(&["queued"]).set(counts.queued);
    m.outbox
        .with_label_values(&["retrying"])
        .set(counts.retrying);
    m.outbox.with_label_values(&["failed"]).set(counts.failed);
    if let Some(snap) = state.writer.snapshot().get() {
        let view = &snap.view;
        let minor = |amount: crate::money::Money| {
            crate::money::Currency::from_code(view.currency)?.to_minor(amount.decimal())
        };
        if let (Some(raised), Some(target)) = (minor(view.raised), minor(view.target)) {
            m.raised.set(raised);
            m.target.set(target);
        }
        for s in [IntakeState::Open, IntakeState::Paused, IntakeState::Closed] {
            m.intake
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == view.intake.state));
        }
    }
    m.backup_at.set(state.backups.last_success().unwrap_or(0));
    m.backup_seq.set(state.backups.last_seq());
    let failures = state.backups.failures();
    m.backup_failures
        .inc_by(failures.saturating_sub(m.backup_failures.get()));
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut text)
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}

/// Starts the `METRICS_ADDR` listener, when configured: one worker serving only
/// `GET /metrics` (and 404 for anything else), apart from the donation port.
pub(super) fn serve(
    state: &web::Data<AppState>,
) -> Result<Option<(u16, actix_web::dev::ServerHandle)>, anyhow::Error> {
    let Some(addr) = state.config.metrics.addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    let state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(|| async {
                actix_web::ResponseError::error_response(&AppError::new(
                    ErrorCode::NotFound,
                    "only GET /metrics is served here",
                ))
            }))
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(1)
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(port, "metrics listening");
    Ok(Some((port, handle)))
}
