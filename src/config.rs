//! Configuration from the environment (and a `.env` file), turned into typed values once.
//!
//! Secrets are kept out of `Debug` output so a logged config never leaks them.

use std::net::SocketAddr;
use std::str::FromStr;

use crate::domain::CapMode;
use crate::money::{AmountBounds, Currency};

mod limits;

pub use limits::{LimitsConfig, Rate};

/// Shortest `JWT_SECRET` accepted, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// Where the ledger is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file path.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres://...`/`postgresql://...`.
    pub fn parse(url: &str) -> Result<DatabaseUrl, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                ConfigError(format!(
                    "DATABASE_URL must start with sqlite:// or postgres://, got {:?}",
                    redact_url(url)
                ))
            })?;
        if path.is_empty() || path.contains(":memory:") {
            return Err(ConfigError(
                "DATABASE_URL needs an SQLite file path (an in-memory database would give each connection its own ledger)".into(),
            ));
        }
        Ok(DatabaseUrl::Sqlite(path.to_owned()))
    }

    /// True for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{p}"),
            DatabaseUrl::Postgres(u) => write!(f, "{}", redact_url(u)),
        }
    }
}

/// Hides a password in a URL for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

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

/// First-run values of the fund (later changes are made through the admin API).
#[derive(Debug, Clone)]
pub struct FundDefaults {
    /// The fund's public name.
    pub name: String,
    /// Currency of every amount.
    pub currency: Currency,
    /// Target in minor units.
    pub target_minor: i64,
    /// What happens to payments under way when intake closes.
    pub cap_mode: CapMode,
}

/// The Stripe account, when card giving is configured.
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_...`.
    pub secret_key: String,
    /// `pk_...`, given to the page.
    pub publishable_key: String,
    /// `whsec_...`; several (comma-separated) while a secret is rotated.
    pub webhook_secrets: Vec<String>,
    /// Another API endpoint (tests use localstripe), without `/v1`.
    pub api_base: Option<String>,
    /// Where the page loads Stripe.js from.
    pub js_url: String,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("publishable_key", &self.publishable_key)
            .field("api_base", &self.api_base)
            .field("js_url", &self.js_url)
            .finish_non_exhaustive()
    }
}

/// Outgoing email: where to send it and what receipts say about the association.
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://host:port`, `smtps://user:pass@host`; `None` logs mail and keeps it queued.
    pub smtp_url: Option<String>,
    /// The sender, e.g. `Legal Defense Fund <receipts@example.org>`.
    pub from: String,
    /// The association's name on receipts (defaults to the fund's name).
    pub association: Option<String>,
    /// The association's tax id, printed on receipts when set.
    pub tax_id: String,
    /// "No goods or services were provided" sentence, English.
    pub no_goods_en: String,
    /// The same sentence, Simplified Chinese.
    pub no_goods_zh: String,
    /// Templates to use instead of the embedded ones.
    pub templates_dir: Option<std::path::PathBuf>,
    /// First retry delay; doubles per attempt up to ten minutes, with jitter.
    pub retry_base: std::time::Duration,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp", &self.smtp_url.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("templates_dir", &self.templates_dir)
            .finish_non_exhaustive()
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
    /// First-run fund values.
    pub fund: FundDefaults,
    /// Bounds for gifts made on the page; offline gifts use only the maximum.
    pub donation_bounds: AmountBounds,
    /// How the ledger writer forms batches.
    pub writer: crate::ledger::BatchTuning,
    /// Connections in the read pool.
    pub pool_size: u32,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// Stripe, if card giving is configured.
    pub stripe: Option<StripeConfig>,
    /// How long a strict-mode reservation holds before its intent is cancelled.
    pub reservation_ttl: std::time::Duration,
    /// Outgoing email.
    pub mail: MailConfig,
    /// Rate limits, the trusted proxy, timeouts.
    pub limits: LimitsConfig,
}

/// `WRITER_BATCH_WAIT_US` when it is not set. A PostgreSQL batch has a fixed cost (three round
/// trips at once, six in a transaction, and a commit) that a millisecond's wait lets more
/// callers share (BENCHMARKS.md, "Seventh session": 8,415 webhooks/s at 32 clients with
/// 1 ms, 8,086 with 500 µs, 7,114 with none). SQLite's writer works in-process with little
/// fixed cost: waiting only idles the one thread that writes, while the callers' HTTP work
/// could overlap its batch (BENCHMARKS.md, "Fifth session": 21% and 27%
/// more webhooks per second at 32 clients without the wait in two sets of alternating runs,
/// and no fewer at 8).
fn default_fill_wait_us(url: &DatabaseUrl) -> usize {
    match url {
        DatabaseUrl::Sqlite(_) => 0,
        DatabaseUrl::Postgres(_) => 1000,
    }
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
        let currency_code = var("FUND_CURRENCY").unwrap_or_else(|| "USD".into());
        let currency = Currency::from_code(&currency_code).ok_or_else(|| {
            ConfigError(format!(
                "FUND_CURRENCY: unsupported currency {currency_code:?}"
            ))
        })?;
        let amount = |key: &str, default: &str| -> Result<i64, ConfigError> {
            let text = var(key).unwrap_or_else(|| default.into());
            match currency.parse_minor(text.trim()) {
                Ok(m) if m > 0 => Ok(m),
                Ok(_) => Err(ConfigError(format!("{key} must be more than zero"))),
                Err(e) => Err(ConfigError(format!("{key}: {e}"))),
            }
        };
        let target_minor = amount("FUND_TARGET", "1000000.00")?;
        let min_minor = amount("DONATION_MIN", "1.00")?;
        let max_minor = amount("DONATION_MAX", "100000.00")?;
        if min_minor > max_minor {
            return Err(ConfigError("DONATION_MIN is above DONATION_MAX".into()));
        }
        let cap_mode = match var("FUND_CAP_MODE").as_deref().map(str::trim) {
            None | Some("soft") => CapMode::Soft,
            Some("strict") => CapMode::Strict,
            Some(other) => {
                return Err(ConfigError(format!(
                    "FUND_CAP_MODE must be soft or strict, got {other:?}"
                )));
            }
        };
        let number = |key: &str, default: usize| -> Result<usize, ConfigError> {
            var(key).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|e| ConfigError(format!("{key}: {e}")))
            })
        };
        let stripe = match var("STRIPE_SECRET_KEY") {
            None => None,
            Some(secret_key) => {
                let need = |key: &str| {
                    var(key).ok_or_else(|| {
                        ConfigError(format!("{key} is required when STRIPE_SECRET_KEY is set"))
                    })
                };
                let webhook_secrets: Vec<String> = need("STRIPE_WEBHOOK_SECRET")?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                Some(StripeConfig {
                    secret_key,
                    publishable_key: need("STRIPE_PUBLISHABLE_KEY")?,
                    webhook_secrets,
                    api_base: var("STRIPE_API_BASE"),
                    js_url: var("STRIPE_JS_URL")
                        .unwrap_or_else(|| "https://js.stripe.com/v3/".into()),
                })
            }
        };
        let reservation_ttl = match var("RESERVATION_TTL") {
            None => std::time::Duration::from_secs(30 * 60),
            Some(t) => parse_duration(&t).filter(|d| !d.is_zero()).ok_or_else(|| {
                ConfigError(format!(
                    "RESERVATION_TTL: not a duration: {t:?} (e.g. 30m, 90s)"
                ))
            })?,
        };
        let mail = MailConfig {
            smtp_url: var("SMTP_URL"),
            from: var("MAIL_FROM")
                .unwrap_or_else(|| "Legal Defense Fund <receipts@localhost>".into()),
            association: var("ASSOCIATION_NAME"),
            tax_id: var("ASSOCIATION_TAX_ID").unwrap_or_default(),
            no_goods_en: var("RECEIPT_NO_GOODS_TEXT").unwrap_or_else(|| {
                "No goods or services were provided in exchange for this contribution.".into()
            }),
            no_goods_zh: var("RECEIPT_NO_GOODS_TEXT_ZH")
                .unwrap_or_else(|| "本次捐款并未换取任何商品或服务。".into()),
            templates_dir: var("EMAIL_TEMPLATES_DIR").map(std::path::PathBuf::from),
            retry_base: match var("MAIL_RETRY_BASE") {
                None => std::time::Duration::from_secs(2),
                Some(t) => parse_duration(&t).filter(|d| !d.is_zero()).ok_or_else(|| {
                    ConfigError(format!("MAIL_RETRY_BASE: not a duration: {t:?}"))
                })?,
            },
        };
        if lettre::message::Mailbox::from_str(&mail.from).is_err() {
            return Err(ConfigError(format!(
                "MAIL_FROM is not a valid mailbox: {:?}",
                mail.from
            )));
        }
        let limits = LimitsConfig::from_lookup(&var)?;
        let fill_wait_us = number("WRITER_BATCH_WAIT_US", default_fill_wait_us(&database_url))?;
        Ok(Config {
            mail,
            limits,
            stripe,
            reservation_ttl,
            database_url,
            bind_addr,
            public_base_url,
            jwt_secret,
            jwt_secret_generated,
            fund: FundDefaults {
                name: var("FUND_NAME").unwrap_or_else(|| "Legal Defense Fund".into()),
                currency,
                target_minor,
                cap_mode,
            },
            donation_bounds: AmountBounds {
                min_minor,
                max_minor,
            },
            writer: crate::ledger::BatchTuning {
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
