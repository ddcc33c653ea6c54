//! The abuse limits an operator can set: per-client rates, the trusted proxy, and timeouts.

use std::time::Duration;

use super::TrustedProxy;
use super::{ConfigError, parse_duration};

/// A rate limit: at most `burst` requests at once, refilled evenly at `burst` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once (and per period).
    pub burst: u32,
    /// Time in which the whole burst is refilled.
    pub period: Duration,
}

impl Rate {
    /// Parses `N/PERIOD`: `30/min`, `10/15m`, `5/s`, `100/h`; `off` is no limit (`None`).
    pub fn parse(key: &str, text: &str) -> Result<Option<Rate>, ConfigError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || {
            ConfigError(format!(
                "{key}: not a rate: {text:?} (e.g. 30/min, 10/15m, 5/s, or off)"
            ))
        };
        let (count, period) = t.split_once('/').ok_or_else(bad)?;
        let burst: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match period.trim() {
            "s" | "sec" | "second" => "1s".to_owned(),
            "m" | "min" | "minute" => "1m".to_owned(),
            "h" | "hour" => "1h".to_owned(),
            other => other.replace("min", "m"),
        };
        let period = parse_duration(&period).ok_or_else(bad)?;
        if burst == 0 || period.is_zero() {
            return Err(ConfigError(format!(
                "{key}: a rate needs a count and a period above zero (or off), got {text:?}"
            )));
        }
        Ok(Some(Rate { burst, period }))
    }
}

/// Limits against abuse: per-client rates, which proxy to believe, how long a request may
/// take.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `POST /api/donations` per client address.
    pub donations: Option<Rate>,
    /// `POST /api/auth/login` per client address.
    pub login: Option<Rate>,
    /// `POST /api/auth/login` per account (email), whatever the address.
    pub login_account: Option<Rate>,
    /// Donors' code requests and code tries (`/receipts`) per client address.
    pub lookup: Option<Rate>,
    /// Donors' code requests per email address, whatever the client address.
    pub lookup_email: Option<Rate>,
    /// `RATE_LIMIT_PUBLIC_LEDGER`: pages of the public ledger per client address.
    pub public_ledger: Option<Rate>,
    /// The proxy whose client-address header is believed, if any.
    pub proxy: Option<TrustedProxy>,
    /// Reading the body and producing the response head; a streamed body is not cut.
    pub request_timeout: Duration,
    /// Receiving the request head (slow-header clients are cut off).
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keep_alive: Duration,
}

impl LimitsConfig {
    /// Reads the limits from the environment lookup `var` (blank values already removed).
    pub fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rate = |key: &str, default: &str| {
            Rate::parse(key, &var(key).unwrap_or_else(|| default.to_owned()))
        };
        let duration = |key: &str, default: Duration| match var(key) {
            None => Ok(default),
            Some(t) => parse_duration(&t)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError(format!("{key}: not a duration: {t:?} (e.g. 30s)"))),
        };
        let proxy = match (var("TRUSTED_PROXY_HEADER"), var("TRUSTED_PROXIES")) {
            (None, None) => None,
            (Some(header), Some(proxies)) => {
                Some(TrustedProxy::parse(&header, &proxies).map_err(ConfigError)?)
            }
            (Some(_), None) => {
                return Err(ConfigError(
                    "TRUSTED_PROXY_HEADER needs TRUSTED_PROXIES (the proxies' addresses)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "TRUSTED_PROXIES needs TRUSTED_PROXY_HEADER (e.g. X-Forwarded-For)".into(),
                ));
            }
        };
        Ok(LimitsConfig {
            donations: rate("RATE_LIMIT_DONATIONS", "30/min")?,
            login: rate("RATE_LIMIT_LOGIN", "10/min")?,
            login_account: rate("RATE_LIMIT_LOGIN_ACCOUNT", "10/15m")?,
            lookup: rate("RATE_LIMIT_LOOKUP", "20/h")?,
            lookup_email: rate("RATE_LIMIT_LOOKUP_EMAIL", "5/h")?,
            public_ledger: rate("RATE_LIMIT_PUBLIC_LEDGER", "120/min")?,
            proxy,
            request_timeout: duration("REQUEST_TIMEOUT", Duration::from_secs(30))?,
            header_timeout: duration("HTTP_HEADER_TIMEOUT", Duration::from_secs(5))?,
            keep_alive: duration("HTTP_KEEP_ALIVE", Duration::from_secs(5))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_plain_words() {
        let r = |t| Rate::parse("K", t).expect("valid rate");
        assert_eq!(
            r("30/min"),
            Some(Rate {
                burst: 30,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            r("10/15m"),
            Some(Rate {
                burst: 10,
                period: Duration::from_secs(900)
            })
        );
        assert_eq!(
            r("5/s"),
            Some(Rate {
                burst: 5,
                period: Duration::from_secs(1)
            })
        );
        assert_eq!(r("OFF"), None);
        for bad in [
            "",
            "30",
            "0/min",
            "30/0s",
            "x/min",
            "30/fortnight",
            "-1/min",
        ] {
            let err = Rate::parse("RATE_LIMIT_LOGIN", bad).expect_err(bad);
            assert!(err.0.contains("RATE_LIMIT_LOGIN"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_proxy_header_without_proxies_is_refused() {
        let only_header = |k: &str| (k == "TRUSTED_PROXY_HEADER").then(|| "X-Forwarded-For".into());
        assert!(LimitsConfig::from_lookup(&only_header).is_err());
        let only_proxies = |k: &str| (k == "TRUSTED_PROXIES").then(|| "127.0.0.1".into());
        assert!(LimitsConfig::from_lookup(&only_proxies).is_err());
        let defaults = LimitsConfig::from_lookup(&|_: &str| None).expect("defaults");
        assert!(defaults.proxy.is_none());
        assert!(defaults.donations.is_some_and(|r| r.burst >= 10));
    }
}
