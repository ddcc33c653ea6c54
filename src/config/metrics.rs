//! `METRICS_ADDR` and `METRICS_TOKEN`: where `GET /metrics` is served, if anywhere.
//!
//! Off by default: the figures (raised, outbox, traffic per route) are not for the donation
//! port's public. A second listener (`METRICS_ADDR`, meant for a private interface) and/or a
//! bearer token (`METRICS_TOKEN`, which also opens `/metrics` on the main port) turn it on.

use std::net::SocketAddr;

use super::ConfigError;

/// Shortest `METRICS_TOKEN` accepted, in bytes (a guessable token would make the figures
/// public).
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

/// The bearer token that opens `/metrics`. Not printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// The token as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

/// Where the metrics are served.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// A second listener serving only `/metrics` (`METRICS_ADDR`); none by default.
    pub addr: Option<SocketAddr>,
    /// The bearer token required for `/metrics` (`METRICS_TOKEN`); with it, `/metrics` is
    /// also served on the main port. Without it the main port answers 404 there.
    pub token: Option<MetricsToken>,
}

impl MetricsConfig {
    /// Reads `METRICS_ADDR` (a socket address) and `METRICS_TOKEN` (at least
    /// [`MIN_METRICS_TOKEN_LEN`] bytes); both unset means no metrics.
    pub fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<MetricsConfig, ConfigError> {
        let addr = var("METRICS_ADDR")
            .map(|a| {
                a.trim()
                    .parse()
                    .map_err(|e| ConfigError(format!("METRICS_ADDR: {e}")))
            })
            .transpose()?;
        let token = match var("METRICS_TOKEN") {
            None => None,
            Some(t) if t.trim().len() < MIN_METRICS_TOKEN_LEN => {
                return Err(ConfigError(format!(
                    "METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LEN} bytes"
                )));
            }
            Some(t) => Some(MetricsToken(t.trim().to_owned())),
        };
        Ok(MetricsConfig { addr, token })
    }

    /// True when `/metrics` is served somewhere.
    pub fn enabled(&self) -> bool {
        self.addr.is_some() || self.token.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<MetricsConfig, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        MetricsConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn off_by_default_and_checked_when_set() {
        let none = read(&[]).expect("valid");
        assert!(!none.enabled());
        let addr = read(&[("METRICS_ADDR", "127.0.0.1:9100")]).expect("valid");
        assert_eq!(addr.addr.map(|a| a.port()), Some(9100));
        assert!(addr.token.is_none());
        assert!(read(&[("METRICS_ADDR", "nowhere")]).is_err());
        assert!(read(&[("METRICS_TOKEN", "short")]).is_err());
        let token = read(&[("METRICS_TOKEN", "0123456789abcdef")]).expect("valid");
        assert_eq!(
            token.token.as_ref().map(MetricsToken::as_str),
            Some("0123456789abcdef")
        );
        assert!(!format!("{token:?}").contains("0123"));
    }
}
