//! Limits against abuse and overload: per-client rate limits (GCRA, the `governor` crate,
//! keyed by client address or by account), bounded request bodies read as problem+json, and
//! the deadline every request must meet.
//!
//! The in-memory limiters count per instance. On PostgreSQL the login limits are also spent
//! in the database (`limits_shared`), so the instances sharing it share one budget; the
//! in-memory limiter stays in front, so a flood from one address is refused without a query.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::State;
use super::client_ip::{TrustedProxy, client_ip, rate_key};
use super::limits_shared::SharedLogins;
use crate::config::{LimitsConfig, Rate};
use crate::error::{AppError, ErrorCode};

/// Longest account key kept (an email is at most 254 bytes; anything longer is cut).
const ACCOUNT_KEY_MAX: usize = 254;
/// How often keys whose buckets are full again are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The rate limiters of one service.
pub struct Limits {
    donations: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_account: Option<DefaultKeyedRateLimiter<String>>,
    lookup: Option<DefaultKeyedRateLimiter<IpAddr>>,
    lookup_email: Option<DefaultKeyedRateLimiter<String>>,
    public_ledger: Option<DefaultKeyedRateLimiter<IpAddr>>,
    proxy: Option<TrustedProxy>,
    clock: DefaultClock,
    shared: Option<SharedLogins>,
    config: LimitsConfig,
    metrics: Option<Arc<super::metrics::Metrics>>,
}

fn limiter<K: Clone + std::hash::Hash + Eq>(
    rate: Option<Rate>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = rate?;
    let burst = NonZeroU32::new(rate.burst)?;
    // One request's worth of the period; at least a nanosecond so the quota is valid.
    let every = (rate.period / rate.burst).max(Duration::from_nanos(1));
    let quota = Quota::with_period(every)?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

fn take<K: Clone + std::hash::Hash + Eq>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    clock: &DefaultClock,
) -> Result<(), AppError> {
    match limiter.map(|l| l.check_key(key)) {
        None | Some(Ok(())) => Ok(()),
        Some(Err(not_until)) => Err(AppError::rate_limited(
            not_until.wait_time_from(clock.now()),
        )),
    }
}

impl Limits {
    /// Limiters as configured (`off` rates have none).
    pub fn new(config: &LimitsConfig) -> Limits {
        Limits {
            donations: limiter(config.donations),
            login: limiter(config.login),
            login_account: limiter(config.login_account),
            lookup: limiter(config.lookup),
            lookup_email: limiter(config.lookup_email),
            public_ledger: limiter(config.public_ledger),
            proxy: config.proxy.clone(),
            clock: DefaultClock::default(),
            shared: None,
            config: config.clone(),
            metrics: None,
        }
    }

    /// Also spends login attempts in the database of `pool` (PostgreSQL), so every instance
    /// on it shares one budget per address and per account.
    pub fn shared_through(mut self, pool: crate::db::Pool) -> Limits {
        self.shared = Some(SharedLogins::new(pool, &self.config));
        self
    }

    /// The caller's rate-limit key: its address (see `client_ip`), IPv6 by /64.
    pub fn client_key(&self, req: &HttpRequest) -> IpAddr {
        let peer = req.peer_addr().map(|a| a.ip());
        client_ip(peer, req.headers(), self.proxy.as_ref())
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), rate_key)
    }

    /// Counts this service's refusals in `metrics` (`crowdledger_rate_limited_total`).
    pub fn counting(mut self, metrics: Arc<super::metrics::Metrics>) -> Limits {
        self.metrics = Some(metrics);
        self
    }

    /// Counts `result` when it is a rate limit's refusal (a shared limit can also fail
    /// otherwise, e.g. its database being away).
    fn count<T>(&self, limit: &str, result: Result<T, AppError>) -> Result<T, AppError> {
        if let (Err(e), Some(m)) = (&result, &self.metrics)
            && e.code == ErrorCode::RateLimited
        {
            m.rate_limited(limit);
        }
        result
    }

    fn donation(&self, req: &HttpRequest) -> Result<(), AppError> {
        let key = self.client_key(req);
        let taken = take(self.donations.as_ref(), &key, &self.clock).inspect_err(|_| {
            tracing::debug!(client = %key, "donation attempt refused: rate limit");
        });
        self.count("donation", taken)
    }

    fn login(&self, req: &HttpRequest) -> Result<(), AppError> {
        let key = self.client_key(req);
        let taken = take(self.login.as_ref(), &key, &self.clock).inspect_err(|_| {
            tracing::info!(client = %key, "login refused: rate limit per address");
        });
        self.count("login", taken)
    }

    /// Spends one read of a public ledger page by the caller's address (scrapers are limited
    /// like donations).
    pub fn public_ledger(&self, req: &HttpRequest) -> Result<(), AppError> {
        let key = self.client_key(req);
        self.count(
            "public_ledger",
            take(self.public_ledger.as_ref(), &key, &self.clock),
        )
    }

    /// Spends one donor lookup attempt (a code asked or tried, `/receipts`) of the caller's
    /// address.
    pub fn lookup(&self, req: &HttpRequest) -> Result<(), AppError> {
        let key = self.client_key(req);
        self.count("lookup", take(self.lookup.as_ref(), &key, &self.clock))
    }

    /// Spends one code request for the address `email` (normalized), whatever the client.
    pub fn lookup_email(&self, email: &str) -> Result<(), AppError> {
        let key = email.to_owned();
        self.count(
            "lookup_email",
            take(self.lookup_email.as_ref(), &key, &self.clock),
        )
    }

    /// Spends one login attempt from address `key` in the budget the instances share (on
    /// PostgreSQL; `login` spent this instance's).
    async fn login_everywhere(&self, key: IpAddr) -> Result<(), AppError> {
        match &self.shared {
            Some(shared) => self.count("login", shared.address(key).await),
            None => Ok(()),
        }
    }

    /// Spends one login attempt on the account `email` here and, on PostgreSQL, in the budget
    /// every instance shares.
    pub async fn login_account_everywhere(&self, email: &str) -> Result<(), AppError> {
        let key = self.login_account(email)?;
        match &self.shared {
            Some(shared) => self.count("account", shared.account(&key).await),
            None => Ok(()),
        }
    }

    /// Spends one login attempt on the account `email` (as typed: trimmed, lower-cased), so
    /// guessing one account's password from many addresses is as slow as from one; returns
    /// that key.
    pub fn login_account(&self, email: &str) -> Result<String, AppError> {
        let mut key = email.trim().to_lowercase();
        if key.len() > ACCOUNT_KEY_MAX {
            let mut cut = ACCOUNT_KEY_MAX;
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            key.truncate(cut);
        }
        let taken = take(self.login_account.as_ref(), &key, &self.clock).inspect_err(|_| {
            tracing::info!("login refused: rate limit per account");
        });
        self.count("account", taken)?;
        Ok(key)
    }

    /// Forgets keys whose buckets are full again, so the key maps stay as small as the set of
    /// clients seen within one refill period.
    pub fn sweep(&self) {
        for l in [&self.donations, &self.login, &self.lookup]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.login_account, &self.lookup_email]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys currently tracked, over every limiter.
    pub fn tracked(&self) -> usize {
        [&self.donations, &self.login, &self.lookup]
            .into_iter()
            .flatten()
            .map(RateLimiter::len)
            .sum::<usize>()
            + [&self.login_account, &self.lookup_email]
                .into_iter()
                .flatten()
                .map(RateLimiter::len)
                .sum::<usize>()
    }

    /// Sweeps every `SWEEP_EVERY` until the service (the last strong reference) is gone.
    pub fn spawn_sweeper(limits: &Arc<Limits>) {
        let weak: Weak<Limits> = Arc::downgrade(limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                limits.sweep();
                if let Some(shared) = &limits.shared {
                    shared.sweep().await;
                }
                tracing::trace!(keys = limits.tracked(), "rate-limit keys after sweep");
            }
        });
    }
}

fn limits_of(req: &HttpRequest) -> Result<&Limits, AppError> {
    req.app_data::<State>()
        .map(|s| &*s.limits)
        .ok_or_else(|| AppError::internal("application state missing"))
}

/// Extractor that spends one of the caller's donation attempts (429 when none is left).
/// Listed first among a handler's arguments, it runs before the body is read.
pub struct DonationAttempt;

impl FromRequest for DonationAttempt {
    type Error = AppError;
    type Future = Ready<Result<DonationAttempt, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            limits_of(req)
                .and_then(|l| l.donation(req))
                .map(|()| DonationAttempt),
        )
    }
}

/// Extractor that spends one of the caller's login attempts (429 when none is left): here,
/// then, on PostgreSQL, in the budget every instance shares. The account's own limit is
/// checked once the body names it.
pub struct LoginAttempt;

impl FromRequest for LoginAttempt {
    type Error = AppError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<LoginAttempt, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let key = limits_of(req).and_then(|l| l.login(req).map(|()| l.client_key(req)));
        Box::pin(async move {
            let key = key?;
            if let Some(state) = state {
                state.limits.login_everywhere(key).await?;
            }
            Ok(LoginAttempt)
        })
    }
}

/// Reads a raw body of at most `limit` bytes: a larger `Content-Length` is refused before
/// reading, a chunked body as soon as it passes the limit; both are 413 `payload_too_large`.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, AppError> {
    let too_large = || {
        AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::new(
                ErrorCode::MalformedJson,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Runs `call` (extractors, which read the body, and the handler) within `limit`; past it the
/// request is dropped and answered 503 `timeout`. Only the response head is awaited, so a
/// streamed body (CSV exports) keeps flowing for as long as it makes progress.
///
/// The answer is an error rather than a response: the request cannot be cloned before
/// routing, and the server renders the error as problem+json all the same.
pub async fn within_deadline<B, F>(
    limit: Duration,
    route: String,
    call: F,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    match tokio::time::timeout(limit, call).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%route, "request stopped at its deadline");
            Err(AppError::timeout(limit).into())
        }
    }
}

#[cfg(test)]
mod tests;
