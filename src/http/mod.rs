//! The HTTP service: the app factory, shared state, and the error handlers that turn every
//! malformed request into problem+json.

mod admin;
mod approvals;
mod audit;
mod auth;
pub mod client_ip;
mod disbursements;
mod donations;
mod donors;
mod fund;
mod input;
pub mod limits;
mod limits_shared;
pub mod metrics;
pub(crate) mod openapi;
mod outbox;
mod payments;
mod public;
mod refunds;
mod rejections;
mod reports;
pub mod request_log;
mod stop;
mod users;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, guard, web};

pub use auth::Staff;
pub(crate) use payments::payment_status;
pub use stop::{Shutdown, stop_signal};

use crate::auth::TokenKeys;
use crate::config::{Config, DatabaseUrl};
use crate::db::{self, Pool};
use crate::error::AppError;
use crate::ledger::{Effect, LedgerWriter, watch};

/// Largest JSON body accepted from staff (offline gifts, admin changes), and the default of
/// any JSON route that does not set its own.
pub const JSON_LIMIT: usize = 16 * 1024;
/// Largest JSON body of the public routes (a donation, a login): a few short fields.
pub const PUBLIC_JSON_LIMIT: usize = 8 * 1024;

/// What every handler can reach.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The single writer.
    pub writer: LedgerWriter,
    /// The read pool.
    pub pool: Pool,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// Stripe, if card giving is configured.
    pub payments: Option<crate::payments::Payments>,
    /// Prefix of Stripe idempotency keys, unique to this fund's database.
    pub instance_key: String,
    /// Per-client rate limits.
    pub limits: Arc<limits::Limits>,
    /// This service's figures for `GET /metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// What the scheduled backups did (`BACKUP_DIR`), for `/metrics`.
    pub backups: Arc<crate::backup::schedule::BackupStatus>,
    /// Staff sessions ended (kept in memory; see `auth::sessions`).
    pub sessions: Arc<crate::auth::sessions::SessionGuard>,
}

/// A started service.
pub struct Running {
    /// The port it listens on.
    pub port: u16,
    /// The port of the `METRICS_ADDR` listener, when there is one.
    pub metrics_port: Option<u16>,
    /// The server future; await it to serve, or spawn it.
    pub server: Server,
    /// Shared state (tests read the writer's snapshot through it).
    pub state: web::Data<AppState>,
    /// Stops the service: at once ([`Shutdown::shutdown`], tests) or in order
    /// ([`Shutdown::graceful`], `serve` on SIGTERM).
    pub shutdown: Shutdown,
}

/// Migrates the database, starts the writer, the watcher and the HTTP server (not yet
/// awaited). Binds `config.bind_addr` (port 0 picks a free port).
pub fn start(config: Config) -> Result<Running, anyhow::Error> {
    if config.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: using a random secret, so tokens end with this process"
        );
    }
    let mut conn = db::establish(&config.database_url)?;
    let ran = db::migrate(&mut conn)?;
    if ran > 0 {
        tracing::info!(migrations = ran, "database migrated");
    }
    let (effects_tx, effects_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = LedgerWriter::start(
        &config.database_url,
        &config.fund,
        config.writer,
        Some(effects_tx),
    )?;
    let mut config = config;
    crate::ledger::adopt_stored_fund(&mut config, &mut conn)?;
    drop(conn);
    // After the fund is adopted: the methods offered are checked against its currency.
    let payments = config
        .stripe
        .as_ref()
        .map(crate::payments::Payments::new)
        .transpose()?;
    let pool = db::pool(&config.database_url, config.pool_size)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    watch::spawn(pool.clone(), writer.clone(), Arc::clone(&stop))?;
    let created = writer.snapshot().get().map_or(0, |s| s.fund_created_micros);
    let instance_key = format!("crowdledger-{created}");
    let mail_wake = Arc::new(tokio::sync::Notify::new());
    let (payments_tx, payments_rx) = tokio::sync::mpsc::channel(PAYMENT_FOLLOW_UPS);
    // The mailer and the payments worker end after what they are doing when this turns true.
    let (tasks_stop, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    tokio::spawn(dispatch_effects(
        effects_rx,
        Arc::clone(&mail_wake),
        payments.is_some().then_some(payments_tx),
    ));
    if let Some(p) = &payments {
        let worker = crate::payments::worker::Worker {
            payments: p.clone(),
            writer: writer.clone(),
            pool: pool.clone(),
            reservation_ttl: config.reservation_ttl,
            intent_budget: config.intent_budget(),
        };
        tasks.push(tokio::spawn(
            worker.run(payments_rx, tasks_stop.subscribe()),
        ));
    } else {
        tracing::warn!("STRIPE_SECRET_KEY is not set: card donations are unavailable");
    }
    let snapshot = Arc::clone(writer.snapshot());
    let mailer = crate::mail::Mailer::new(
        config.mail.clone(),
        pool.clone(),
        mail_wake,
        Arc::new(move || {
            snapshot
                .get()
                .map(|s| s.view.name.clone())
                .unwrap_or_default()
        }),
        config.public_base_url.clone(),
        created.to_string(),
    )?;
    tasks.push(tokio::spawn(mailer.run(tasks_stop.subscribe())));
    let backups = Arc::new(crate::backup::schedule::BackupStatus::default());
    if let Some(schedule) = &config.backup {
        tasks.push(crate::backup::schedule::spawn(
            config.database_url.clone(),
            schedule.clone(),
            Arc::clone(&backups),
            tasks_stop.subscribe(),
        ));
    }
    let keys = TokenKeys::new(config.jwt_secret.bytes())?;
    let sessions = Arc::new(crate::auth::sessions::SessionGuard::default());
    sessions.reload(&mut *pool.get()?)?;
    sessions.spawn(pool.clone(), Arc::clone(&stop))?;
    let listener = TcpListener::bind(config.bind_addr)?;
    let port = listener.local_addr()?.port();
    let workers = config.http_workers;
    let metrics = Arc::new(metrics::Metrics::new(&writer.stats())?);
    let limits = limits::Limits::new(&config.limits).counting(Arc::clone(&metrics));
    // Login limits shared by the instances of one PostgreSQL database (see `limits_shared`).
    let limits = Arc::new(match config.database_url {
        DatabaseUrl::Postgres(_) => limits.shared_through(pool.clone()),
        DatabaseUrl::Sqlite(_) => limits,
    });
    limits::Limits::spawn_sweeper(&limits);
    let timeouts = config.limits.clone();
    // Made now, so the first login with an unknown email costs no more than any other.
    crate::auth::prepare_dummy_hash()?;
    let state = web::Data::new(AppState {
        config,
        writer,
        pool,
        keys,
        payments,
        instance_key,
        limits,
        metrics: Arc::clone(&metrics),
        backups,
        sessions,
    });
    crate::web::check()?;
    let csp = crate::web::content_security_policy(&state.config);
    let app_state = state.clone();
    let deadline = timeouts.request_timeout;
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusing = Arc::clone(&stopping);
    let shutdown_timeout = config_shutdown_timeout(&state.config);
    let mut server = HttpServer::new(move || {
        let refusing = Arc::clone(&refusing);
        App::new()
            .wrap_fn(move |req, srv| {
                use futures_util::future::{Either, ready};
                match stop::refused_when_stopping(&refusing, req) {
                    Ok(refused) => Either::Left(ready(Ok(refused))),
                    Err(req) => {
                        // The route pattern, not the raw path (which can carry ids and tokens).
                        let route = req
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".to_owned());
                        let call = limits::within_deadline(deadline, route, srv.call(req));
                        Either::Right(stop::closing_when_stopping(Arc::clone(&refusing), call))
                    }
                }
            })
            .wrap(crate::web::security_headers(&csp))
            // Outermost, so the line has the final status and the whole latency.
            .wrap_fn({
                let metrics = Arc::clone(&metrics);
                move |req, srv| request_log::log_request(req, srv, Arc::clone(&metrics))
            })
            .configure(|cfg| routes(cfg, app_state.clone()))
    })
    // Slow clients: the request head must arrive in time, idle connections close.
    .client_request_timeout(timeouts.header_timeout)
    .client_disconnect_timeout(std::time::Duration::from_secs(2))
    .keep_alive(timeouts.keep_alive)
    .listen(listener)?
    // `serve` handles the signals itself, to stop the writer and the mailer after the server.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout);
    if workers > 0 {
        server = server.workers(workers);
    }
    tracing::info!(port, "crowdledger listening");
    let server = server.run();
    let (metrics_port, metrics_server) = match metrics::serve(&state)? {
        Some((port, handle)) => (Some(port), Some(handle)),
        None => (None, None),
    };
    Ok(Running {
        port,
        metrics_port,
        shutdown: Shutdown {
            server: server.handle(),
            metrics_server,
            watcher: stop,
            stopping,
            tasks_stop: Arc::new(tasks_stop),
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            writer: state.writer.clone(),
        },
        server,
        state,
    })
}

/// The server's own graceful stop, in whole seconds (what actix takes): the requests in
/// flight get `SHUTDOWN_TIMEOUT` less a second, which is left for the writer and the mailer.
fn config_shutdown_timeout(config: &Config) -> u64 {
    config.shutdown_timeout.as_secs().saturating_sub(1).max(1)
}

/// Routes the writer's after-commit effects: mail wakes the mailer, the rest go to the
/// payments worker (when Stripe is configured).
///
/// The payments queue is bounded: when Stripe is slow and a burst of successes outruns the
/// fee look-ups, further look-ups are dropped (the sweep fetches every missing fee later), so
/// memory stays bounded; the rarer effects wait for room.
async fn dispatch_effects(
    mut effects: tokio::sync::mpsc::UnboundedReceiver<Effect>,
    mail: Arc<tokio::sync::Notify>,
    payments: Option<tokio::sync::mpsc::Sender<Effect>>,
) {
    while let Some(effect) = effects.recv().await {
        match (effect, &payments) {
            (Effect::MailQueued, _) => mail.notify_one(),
            (fees @ Effect::FetchFees { .. }, Some(p)) => {
                if p.try_send(fees).is_err() {
                    tracing::debug!("fee look-up left to the sweep: follow-up queue full");
                }
            }
            (other, Some(p)) => {
                let _ = p.send(other).await;
            }
            (_, None) => {}
        }
    }
}

/// Payment follow-ups (fee look-ups, cancellations, payout reconciliations) waiting at most.
const PAYMENT_FOLLOW_UPS: usize = 4_096;

/// Registers every route, with the shared state and error handlers.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let metrics_on_main_port = state.config.metrics.token.is_some();
    cfg.app_data(state)
        .app_data(rejections::json_body(JSON_LIMIT))
        .app_data(
            web::QueryConfig::default().error_handler(|e, _req| rejections::query_error(&e).into()),
        )
        .app_data(
            web::PathConfig::default().error_handler(|e, _req| rejections::path_error(&e).into()),
        )
        .configure(fund::routes)
        // The public ledger's head is served from memory like the fund: matched early.
        .configure(public::routes)
        .configure(auth::routes)
        .configure(donations::routes)
        .configure(admin::routes)
        .configure(refunds::routes)
        .configure(approvals::routes)
        .configure(users::routes)
        .configure(disbursements::routes)
        .configure(audit::routes)
        .configure(donors::routes)
        .configure(payments::routes)
        .configure(outbox::routes)
        .configure(reports::routes)
        .configure(openapi::routes)
        .configure(crate::web::routes)
        .configure(|cfg| {
            // On the donation port only with a token: never public by default.
            if metrics_on_main_port {
                cfg.route("/metrics", web::get().to(metrics::scrape));
            }
        })
        .default_service(web::to(rejections::not_found));
}

/// A resource answering `method` at `path` whose JSON body may be at most `limit` bytes: every
/// route that takes a body says how large it may be.
pub(crate) fn with_body_limit(
    path: &str,
    method: actix_web::http::Method,
    limit: usize,
) -> actix_web::Resource {
    web::resource(path)
        .guard(guard::Method(method))
        .app_data(rejections::json_body(limit))
}

/// Runs blocking database work on actix's blocking pool with a pooled connection.
pub(crate) async fn with_conn<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut db::DbConn) -> Result<T, AppError> + Send + 'static,
{
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

/// Shared handle type for handlers.
pub(crate) type State = web::Data<AppState>;
