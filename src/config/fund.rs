//! The fund's first-run settings (`FUND_*`, `DONATION_MIN`/`DONATION_MAX`) and how they give
//! way to the fund stored in the database once it exists.
//!
//! `FUND_NAME`, `FUND_TARGET`, `FUND_CURRENCY` and `FUND_CAP_MODE` create the fund on the
//! first start; from then on the database is the truth (an admin changes the name and target
//! through the API). Amount text is read in the fund's stored currency: a `5000` parsed as yen
//! while the ledger is in dollars would charge one amount and credit another.

use crate::domain::CapMode;
use crate::money::{AmountBounds, Currency};

use super::ConfigError;

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

/// `DONATION_MIN` and `DONATION_MAX` as written, so they can be read again in the currency of
/// the stored fund.
#[derive(Debug, Clone)]
pub struct BoundsText {
    min: String,
    max: String,
}

/// Reads one positive amount setting in `currency`.
pub(super) fn positive(key: &str, text: &str, currency: Currency) -> Result<i64, ConfigError> {
    match currency.parse_minor(text.trim()) {
        Ok(m) if m > 0 => Ok(m),
        Ok(_) => Err(ConfigError(format!("{key} must be more than zero"))),
        Err(e) => Err(ConfigError(format!(
            "{key}: {text:?} in {}: {e}",
            currency.code()
        ))),
    }
}

impl BoundsText {
    /// The settings' text, defaults filled in (whole units, so they read in any currency).
    pub(super) fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> BoundsText {
        BoundsText {
            min: var("DONATION_MIN").unwrap_or_else(|| "1".into()),
            max: var("DONATION_MAX").unwrap_or_else(|| "100000".into()),
        }
    }

    /// The bounds in `currency`'s minor units.
    pub fn parse(&self, currency: Currency) -> Result<AmountBounds, ConfigError> {
        let min_minor = positive("DONATION_MIN", &self.min, currency)?;
        let max_minor = positive("DONATION_MAX", &self.max, currency)?;
        if min_minor > max_minor {
            return Err(ConfigError("DONATION_MIN is above DONATION_MAX".into()));
        }
        Ok(AmountBounds {
            min_minor,
            max_minor,
        })
    }
}

impl FundDefaults {
    /// Reads `FUND_*`.
    pub(super) fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<FundDefaults, ConfigError> {
        let currency_code = var("FUND_CURRENCY").unwrap_or_else(|| "USD".into());
        let currency = Currency::from_code(&currency_code).ok_or_else(|| {
            ConfigError(format!(
                "FUND_CURRENCY: unsupported currency {currency_code:?}"
            ))
        })?;
        let target = var("FUND_TARGET").unwrap_or_else(|| "1000000".into());
        let cap_mode = match var("FUND_CAP_MODE").as_deref().map(str::trim) {
            None | Some("soft") => CapMode::Soft,
            Some("strict") => CapMode::Strict,
            Some(other) => {
                return Err(ConfigError(format!(
                    "FUND_CAP_MODE must be soft or strict, got {other:?}"
                )));
            }
        };
        Ok(FundDefaults {
            name: var("FUND_NAME").unwrap_or_else(|| "Legal Defense Fund".into()),
            currency,
            target_minor: positive("FUND_TARGET", &target, currency)?,
            cap_mode,
        })
    }
}

/// The fund as the database holds it, for [`super::Config::adopt_fund`].
#[derive(Debug, Clone)]
pub struct StoredFund {
    /// Its name now.
    pub name: String,
    /// Its currency (fixed at creation).
    pub currency: Currency,
    /// Its target now, minor units.
    pub target_minor: i64,
    /// Its cap mode.
    pub cap_mode: CapMode,
}

impl super::Config {
    /// Makes the stored fund the truth: every amount read from then on (page, offline gifts,
    /// refunds, target, periods, CLI, donation bounds) is in its currency. Returns one line per
    /// `FUND_*` setting that disagrees with it, naming both values, for a warning; fails when
    /// `DONATION_MIN`/`DONATION_MAX` cannot be read in the stored currency.
    pub fn adopt_fund(&mut self, stored: &StoredFund) -> Result<Vec<String>, ConfigError> {
        let configured = &self.fund;
        let mut differ = Vec::new();
        if configured.currency != stored.currency {
            differ.push(format!(
                "FUND_CURRENCY is {} but the fund is in {}",
                configured.currency.code(),
                stored.currency.code()
            ));
        }
        if configured.cap_mode != stored.cap_mode {
            differ.push(format!(
                "FUND_CAP_MODE is {} but the fund's is {}",
                configured.cap_mode.as_str(),
                stored.cap_mode.as_str()
            ));
        }
        if configured.currency == stored.currency && configured.target_minor != stored.target_minor
        {
            differ.push(format!(
                "FUND_TARGET is {} but the fund's target is {}",
                configured.currency.format(configured.target_minor),
                stored.currency.format(stored.target_minor)
            ));
        }
        if configured.name != stored.name {
            differ.push(format!(
                "FUND_NAME is {:?} but the fund is named {:?}",
                configured.name, stored.name
            ));
        }
        self.donation_bounds = self.bounds_text.parse(stored.currency).map_err(|e| {
            ConfigError(format!(
                "{} (the fund stored in the database is in {})",
                e.0,
                stored.currency.code()
            ))
        })?;
        self.approval_above_minor = self.approval_text.parse(stored.currency).map_err(|e| {
            ConfigError(format!(
                "{} (the fund stored in the database is in {})",
                e.0,
                stored.currency.code()
            ))
        })?;
        self.fee_cover = self.fee_text.parse(stored.currency).map_err(|e| {
            ConfigError(format!(
                "{} (the fund stored in the database is in {})",
                e.0,
                stored.currency.code()
            ))
        })?;
        if let Some(s) = self.stripe.as_mut() {
            s.enable_methods(stored.currency.code()).map_err(|e| {
                ConfigError(format!(
                    "{} (the fund stored in the database is in {})",
                    e.0,
                    stored.currency.code()
                ))
            })?;
        }
        self.fund = FundDefaults {
            name: stored.name.clone(),
            currency: stored.currency,
            target_minor: stored.target_minor,
            cap_mode: stored.cap_mode,
        };
        Ok(differ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned()).expect("valid config")
    }

    fn usd_fund() -> StoredFund {
        StoredFund {
            name: "Legal Defense Fund".into(),
            currency: Currency::USD,
            target_minor: 100_000_000,
            cap_mode: CapMode::Soft,
        }
    }

    #[test]
    fn the_stored_currency_wins_and_the_bounds_are_read_again_in_it() {
        let mut c = config(&[
            ("FUND_CURRENCY", "JPY"),
            ("FUND_TARGET", "500000"),
            ("DONATION_MIN", "100"),
        ]);
        assert_eq!(c.donation_bounds.min_minor, 100);
        let differ = c.adopt_fund(&usd_fund()).expect("adopted");
        assert_eq!(c.fund.currency, Currency::USD);
        assert_eq!(c.fund.target_minor, 100_000_000);
        assert_eq!(c.donation_bounds.min_minor, 10_000, "100 dollars, not yen");
        assert_eq!(c.donation_bounds.max_minor, 10_000_000);
        assert_eq!(differ.len(), 1, "{differ:?}");
        assert!(differ[0].contains("JPY") && differ[0].contains("USD"));
    }

    #[test]
    fn matching_settings_say_nothing() {
        let mut c = config(&[]);
        assert!(c.adopt_fund(&usd_fund()).expect("adopted").is_empty());
    }

    #[test]
    fn bounds_that_do_not_fit_the_stored_currency_are_refused_by_name() {
        let mut c = config(&[("DONATION_MIN", "0.50")]);
        let yen = StoredFund {
            currency: Currency::from_code("JPY").expect("known"),
            ..usd_fund()
        };
        let err = c.adopt_fund(&yen).expect_err("refused");
        assert!(
            err.0.contains("DONATION_MIN") && err.0.contains("JPY"),
            "{}",
            err.0
        );
    }
}
