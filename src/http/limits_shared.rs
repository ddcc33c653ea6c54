//! Login limits shared by every instance of one PostgreSQL database. The in-memory limiters of
//! `limits` count per process, so N instances behind a load balancer would allow N times the
//! attempts; on PostgreSQL each login attempt also spends from a bucket kept in the database
//! (table `login_limits`), the same GCRA as `governor`'s: one row per key holding the
//! "theoretical arrival time", moved forward by one request's worth of the period per
//! attempt, and only while it stays within one period of now. One statement, atomic under
//! concurrency (`INSERT ... ON CONFLICT DO UPDATE ... WHERE`), timed by the database's clock
//! so the instances' clocks need not agree.
//!
//! SQLite is not shared: it is one file on one machine, run by one instance.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::config::{LimitsConfig, Rate};
use crate::db::{DbConn, Pool};
use crate::error::AppError;

/// The database side of the login limits (PostgreSQL only).
pub struct SharedLogins {
    pool: Pool,
    /// Per client address (`RATE_LIMIT_LOGIN`).
    address: Option<Rate>,
    /// Per account (`RATE_LIMIT_LOGIN_ACCOUNT`).
    account: Option<Rate>,
}

#[derive(QueryableByName)]
struct Spent {
    #[diesel(sql_type = BigInt)]
    now_us: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    granted_us: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    tat_us: Option<i64>,
}

/// Spends one attempt of `rate` on `key`: `Ok(None)` when allowed, `Ok(Some(wait))` when
/// refused (nothing is spent). A no-op on SQLite.
pub fn spend(conn: &mut DbConn, key: &str, rate: Rate) -> Result<Option<Duration>, AppError> {
    let DbConn::Pg(c) = conn else {
        return Ok(None);
    };
    let period_us = i64::try_from(rate.period.as_micros()).unwrap_or(i64::MAX / 4);
    let every_us = (period_us / i64::from(rate.burst.max(1))).max(1);
    let spent: Spent = diesel::sql_query(
        "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS t), \
         up AS (INSERT INTO login_limits AS l (key, tat_us) SELECT $1, t + $2 FROM clock \
           ON CONFLICT (key) DO UPDATE SET tat_us = GREATEST(l.tat_us, (SELECT t FROM clock)) + $2 \
           WHERE GREATEST(l.tat_us, (SELECT t FROM clock)) + $2 - (SELECT t FROM clock) <= $3 \
           RETURNING l.tat_us) \
         SELECT (SELECT t FROM clock) AS now_us, (SELECT tat_us FROM up) AS granted_us, \
           (SELECT tat_us FROM login_limits WHERE key = $1) AS tat_us",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(every_us)
    .bind::<BigInt, _>(period_us)
    .get_result(c)?;
    if spent.granted_us.is_some() {
        return Ok(None);
    }
    // Refused: allowed again once now + every - period reaches the stored time.
    let tat = spent.tat_us.unwrap_or(spent.now_us);
    let wait_us = tat.max(spent.now_us) + every_us - period_us - spent.now_us;
    Ok(Some(Duration::from_micros(
        u64::try_from(wait_us).unwrap_or(0).max(1),
    )))
}

/// Forgets keys whose buckets are full again (their time is past); returns how many.
pub fn sweep(conn: &mut DbConn) -> Result<usize, AppError> {
    let DbConn::Pg(c) = conn else {
        return Ok(0);
    };
    Ok(diesel::sql_query(
        "DELETE FROM login_limits \
         WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
    )
    .execute(c)?)
}

impl SharedLogins {
    /// The login limits of `config`, kept in the database of `pool` (PostgreSQL).
    pub fn new(pool: Pool, config: &LimitsConfig) -> SharedLogins {
        SharedLogins {
            pool,
            address: config.login,
            account: config.login_account,
        }
    }

    /// Spends one login attempt from client address `ip`, for every instance.
    pub async fn address(&self, ip: IpAddr) -> Result<(), AppError> {
        let Some(rate) = self.address else {
            return Ok(());
        };
        self.take(format!("address:{ip}"), rate).await.inspect_err(
            |_| tracing::info!(client = %ip, "login refused: shared limit per address"),
        )
    }

    /// Spends one login attempt on the account `key` (normalised), for every instance.
    pub async fn account(&self, key: &str) -> Result<(), AppError> {
        let Some(rate) = self.account else {
            return Ok(());
        };
        self.take(format!("account:{key}"), rate)
            .await
            .inspect_err(|_| tracing::info!("login refused: shared limit per account"))
    }

    /// Spends one attempt of `rate` on `key` for every instance; 429 when none is left.
    async fn take(&self, key: String, rate: Rate) -> Result<(), AppError> {
        let pool = self.pool.clone();
        let refused = web::block(move || spend(&mut *pool.get()?, &key, rate)).await??;
        match refused {
            None => Ok(()),
            Some(wait) => Err(AppError::rate_limited(wait)),
        }
    }

    /// Deletes the rows of full buckets (run by the limits' sweeper).
    pub async fn sweep(&self) {
        let pool = self.pool.clone();
        let swept = web::block(move || sweep(&mut *pool.get()?)).await;
        match swept {
            Ok(Ok(n)) => tracing::trace!(keys = n, "shared login-limit keys swept"),
            Ok(Err(e)) => tracing::warn!(error = %e.detail, "shared login limits not swept"),
            Err(e) => tracing::warn!(error = %e, "shared login limits not swept"),
        }
    }
}
