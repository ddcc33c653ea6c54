//! Configuration from the environment (and a `.env` file), turned into typed values once.
//!
//! Secrets are kept out of `Debug` output so a logged config never leaks them.

use std::net::SocketAddr;

use crate::money::AmountBounds;

mod approval;
mod backup;
mod checks;
mod database;
mod fee;
mod fund;
mod limits;
mod logging;
mod mail;
mod metrics;
mod proxy;
mod staff;
mod stripe;

pub use approval::ApprovalText;
pub use backup::BackupSchedule;
pub use checks::CheckInstructions;
use database::default_fill_wait_us;
pub use database::{BatchTuning, DatabaseUrl};
pub use fee::{FeeCover, FeeText};
pub use fund::{BoundsText, FundDefaults, StoredFund};
pub use limits::{LimitsConfig, Rate};
pub use logging::LogFormat;
pub use mail::{MailConfig, TaxStatus};
pub use metrics::{MetricsConfig, MetricsToken};
pub use proxy::{IpNet, TrustedProxy};
pub use staff::RequireMfa;
pub use stripe::StripeConfig;

/// Shortest `JWT_SECRET` accepted, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// A bad configuration value; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The JWT signing secret. Not printed.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(***)")
    }
}

/// Parses a duration such as `30m`, `90s`, `2h` or plain seconds.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let millis = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(millis))
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ledger database.
    pub database_url: DatabaseUrl,
    /// Listen address.
    pub bind_addr: SocketAddr,
    /// External URL for links in emails.
    pub public_base_url: String,
    /// JWT signing secret.
    pub jwt_secret: JwtSecret,
    /// True when no `JWT_SECRET` was given and a random one is in use.
    pub jwt_secret_generated: bool,
    /// First-run fund values; the stored fund's once [`Config::adopt_fund`] ran.
    pub fund: FundDefaults,
    /// Bounds for gifts made on the page; offline gifts use only the maximum. In the
    /// stored fund's currency once [`Config::adopt_fund`] ran.
    pub donation_bounds: AmountBounds,
    /// `DONATION_MIN`/`DONATION_MAX` as written, read again by [`Config::adopt_fund`].
    pub bounds_text: BoundsText,
    /// How the ledger writer forms batches.
    pub writer: BatchTuning,
    /// Connections in the read pool.
    pub pool_size: u32,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// `SHUTDOWN_TIMEOUT`: the most a stop (SIGTERM or Ctrl-C) may take, from the signal to
    /// the exit: requests in flight, the writer's last batch and the email being sent.
    pub shutdown_timeout: std::time::Duration,
    /// Stripe, if card giving is configured.
    pub stripe: Option<StripeConfig>,
    /// How long a strict-mode reservation holds before its intent is cancelled.
    pub reservation_ttl: std::time::Duration,
    /// Outgoing email.
    pub mail: MailConfig,
    /// Rate limits, the trusted proxy, timeouts.
    pub limits: LimitsConfig,
    /// How log lines are written (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Where `GET /metrics` is served (`METRICS_ADDR`, `METRICS_TOKEN`); nowhere by default.
    pub metrics: MetricsConfig,
    /// Backups the server takes itself (`BACKUP_DIR`, `BACKUP_EVERY`, `BACKUP_KEEP`); none
    /// by default.
    pub backup: Option<BackupSchedule>,
    /// `APPROVAL_THRESHOLD` as written, read again in the stored fund's currency.
    pub approval_text: ApprovalText,
    /// Refunds above this (minor units) wait for a second admin; `None`: never.
    pub approval_above_minor: Option<i64>,
    /// `FUND_TIMEZONE` (IANA name, default UTC): where the fund's days and years begin, for
    /// year-end statements.
    pub timezone: chrono_tz::Tz,
    /// `CHECK_PAYEE`, `CHECK_ADDRESS`: how to give by check (the donor page shows it).
    pub checks: Option<CheckInstructions>,
    /// `FEE_COVER`, `FEE_PERCENT`, `FEE_FIXED` as written, read again in the stored fund's
    /// currency.
    pub fee_text: FeeText,
    /// The fee a donor may cover, when offered (in the stored fund's currency).
    pub fee_cover: Option<FeeCover>,
    /// `REQUIRE_2FA`: which staff must have a second factor (admins by default).
    pub require_mfa: RequireMfa,
    /// `PUBLIC_DONOR_NAMES` (`on` by default): the public ledger names donors who did not
    /// give anonymously; `off` names nobody.
    pub public_donor_names: bool,
}

impl Config {
    /// How long a new card donation may wait for its PaymentIntent: twice the request
    /// deadline, the donor's request and one retry with the same `Idempotency-Key` (which
    /// waits for the first one's intent). Past it the donation is abandoned and its
    /// strict-mode reservation released, rather than held for `RESERVATION_TTL`.
    pub fn intent_budget(&self) -> std::time::Duration {
        self.limits.request_timeout.saturating_mul(2)
    }

    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Config, ConfigError> {
        let _ = dotenvy::dotenv();
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds a config from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let database_url = DatabaseUrl::parse(
            &var("DATABASE_URL").unwrap_or_else(|| "sqlite://crowdledger.db".into()),
        )?;
        let bind_addr = var("BIND_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse()
            .map_err(|e| ConfigError(format!("BIND_ADDR: {e}")))?;
        let public_base_url =
            var("PUBLIC_BASE_URL").unwrap_or_else(|| format!("http://{bind_addr}"));
        let (jwt_secret, jwt_secret_generated) = match var("JWT_SECRET") {
            Some(s) if s.len() < MIN_JWT_SECRET_LEN => {
                return Err(ConfigError(format!(
                    "JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes (got {})",
                    s.len()
                )));
            }
            Some(s) => (JwtSecret(s.into_bytes()), false),
            None => {
                let bytes: [u8; 32] = rand::random();
                (JwtSecret(hex::encode(bytes).into_bytes()), true)
            }
        };
        let fund = FundDefaults::from_lookup(&var)?;
        let bounds_text = BoundsText::from_lookup(&var);
        let donation_bounds = bounds_text.parse(fund.currency)?;
        let number = |key: &str, default: usize| -> Result<usize, ConfigError> {
            var(key).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|e| ConfigError(format!("{key}: {e}")))
            })
        };
        let reservation_ttl = match var("RESERVATION_TTL") {
            None => std::time::Duration::from_secs(30 * 60),
            Some(t) => parse_duration(&t).filter(|d| !d.is_zero()).ok_or_else(|| {
                ConfigError(format!(
                    "RESERVATION_TTL: not a duration: {t:?} (e.g. 30m, 90s)"
                ))
            })?,
        };
        let shutdown_timeout = match var("SHUTDOWN_TIMEOUT") {
            None => std::time::Duration::from_secs(30),
            Some(t) => parse_duration(&t).filter(|d| !d.is_zero()).ok_or_else(|| {
                ConfigError(format!(
                    "SHUTDOWN_TIMEOUT: not a duration: {t:?} (e.g. 30s)"
                ))
            })?,
        };
        let mut stripe = StripeConfig::from_lookup(&var)?;
        if let Some(s) = stripe.as_mut() {
            s.enable_methods(fund.currency.code())?;
        }
        let mail = MailConfig::from_lookup(&var)?;
        let limits = LimitsConfig::from_lookup(&var)?;
        let log_format = LogFormat::from_lookup(&var)?;
        let metrics = MetricsConfig::from_lookup(&var)?;
        let backup = BackupSchedule::from_lookup(&var)?;
        let approval_text = ApprovalText::from_lookup(&var);
        let require_mfa = RequireMfa::from_lookup(&var)?;
        let public_donor_names = match var("PUBLIC_DONOR_NAMES").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "PUBLIC_DONOR_NAMES: {other:?} is not on or off"
                )));
            }
        };
        let checks = CheckInstructions::from_lookup(&var)?;
        let fee_text = FeeText::from_lookup(&var)?;
        let fee_cover = fee_text.parse(fund.currency)?;
        let timezone = match var("FUND_TIMEZONE") {
            None => chrono_tz::UTC,
            Some(name) => name.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "FUND_TIMEZONE: {name:?} is not an IANA time zone (e.g. America/Los_Angeles, UTC)"
                ))
            })?,
        };
        let approval_above_minor = approval_text.parse(fund.currency)?;
        let fill_wait_us = number("WRITER_BATCH_WAIT_US", default_fill_wait_us(&database_url))?;
        Ok(Config {
            log_format,
            metrics,
            backup,
            approval_text,
            approval_above_minor,
            require_mfa,
            public_donor_names,
            timezone,
            checks,
            fee_text,
            fee_cover,
            mail,
            limits,
            stripe,
            reservation_ttl,
            shutdown_timeout,
            database_url,
            bind_addr,
            public_base_url,
            jwt_secret,
            jwt_secret_generated,
            fund,
            donation_bounds,
            bounds_text,
            writer: BatchTuning {
                max: number("WRITER_BATCH_MAX", 512)?.max(1),
                fill_wait: std::time::Duration::from_micros(
                    u64::try_from(fill_wait_us.min(100_000)).unwrap_or(0),
                ),
            },
            pool_size: u32::try_from(number("DATABASE_POOL_SIZE", 8)?.clamp(1, 64)).unwrap_or(8),
            http_workers: number("HTTP_WORKERS", 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_work_on_a_fresh_machine() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.database_url, DatabaseUrl::Sqlite("crowdledger.db".into()));
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(c.jwt_secret_generated);
        assert_eq!(c.fund.target_minor, 100_000_000);
        assert_eq!(c.fund.name, "Legal Defense Fund");
    }

    #[test]
    fn the_shutdown_timeout_defaults_to_30s_and_refuses_nonsense() {
        let timeout = |pairs: &[(&str, &str)]| config(pairs).map(|c| c.shutdown_timeout);
        assert_eq!(timeout(&[]).ok(), Some(std::time::Duration::from_secs(30)));
        assert_eq!(
            timeout(&[("SHUTDOWN_TIMEOUT", "90s")]).ok(),
            Some(std::time::Duration::from_secs(90))
        );
        for bad in ["0", "soon", "-5s"] {
            let err = timeout(&[("SHUTDOWN_TIMEOUT", bad)]).expect_err(bad);
            assert!(err.0.starts_with("SHUTDOWN_TIMEOUT"), "{}", err.0);
        }
    }

    #[test]
    fn the_group_commit_wait_defaults_by_engine_and_can_be_set() {
        let wait = |pairs: &[(&str, &str)]| config(pairs).expect("valid").writer.fill_wait;
        let pg = ("DATABASE_URL", "postgres://db/x");
        assert_eq!(wait(&[]), std::time::Duration::ZERO);
        assert_eq!(wait(&[pg]), std::time::Duration::from_micros(1000));
        assert_eq!(
            wait(&[("WRITER_BATCH_WAIT_US", "250")]),
            std::time::Duration::from_micros(250)
        );
        assert_eq!(
            wait(&[pg, ("WRITER_BATCH_WAIT_US", "0")]),
            std::time::Duration::ZERO
        );
    }

    #[test]
    fn mail_retry_cap_and_lease_default_and_refuse_nonsense() {
        let mail = |pairs: &[(&str, &str)]| config(pairs).expect("valid").mail;
        let m = mail(&[]);
        assert_eq!(m.retry_max, std::time::Duration::from_secs(600));
        assert_eq!(m.lease, std::time::Duration::from_secs(120));
        let m = mail(&[("MAIL_RETRY_MAX", "1h"), ("MAIL_LEASE", "5m")]);
        assert_eq!(m.retry_max, std::time::Duration::from_secs(3600));
        assert_eq!(m.lease, std::time::Duration::from_secs(300));
        for key in ["MAIL_RETRY_BASE", "MAIL_RETRY_MAX", "MAIL_LEASE"] {
            for bad in ["0", "0s", "soon", "-5s"] {
                let err = config(&[(key, bad)]).expect_err(bad);
                assert!(err.0.contains(key), "{key}={bad}: {err}");
            }
        }
    }

    #[test]
    fn log_format_is_text_or_json_and_nothing_else() {
        let format = |pairs: &[(&str, &str)]| config(pairs).expect("valid").log_format;
        assert_eq!(format(&[]), LogFormat::Text);
        assert_eq!(format(&[("LOG_FORMAT", "text")]), LogFormat::Text);
        assert_eq!(format(&[("LOG_FORMAT", "json")]), LogFormat::Json);
        assert_eq!(format(&[("LOG_FORMAT", " JSON ")]), LogFormat::Json);
        for bad in ["yaml", "jsonl", "logfmt", "1"] {
            let err = config(&[("LOG_FORMAT", bad)]).expect_err(bad);
            assert!(err.0.contains("LOG_FORMAT"), "{bad}: {err}");
            assert!(err.0.contains("text or json"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_fund_time_zone_is_an_iana_name() {
        let tz = |pairs: &[(&str, &str)]| config(pairs).map(|c| c.timezone);
        assert_eq!(tz(&[]).ok(), Some(chrono_tz::UTC));
        assert_eq!(
            tz(&[("FUND_TIMEZONE", "America/Los_Angeles")]).ok(),
            Some(chrono_tz::America::Los_Angeles)
        );
        let err = tz(&[("FUND_TIMEZONE", "Pacific Time")]).expect_err("refused");
        assert!(err.0.starts_with("FUND_TIMEZONE"), "{err}");
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let err = config(&[("JWT_SECRET", "short")]).expect_err("must refuse");
        assert!(err.0.contains("32"));
    }

    #[test]
    fn postgres_password_is_not_printed() {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]).expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
