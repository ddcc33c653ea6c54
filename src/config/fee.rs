//! `FEE_COVER`, `FEE_PERCENT`, `FEE_FIXED`: the donor may add what the card processor keeps,
//! so the whole gift reaches the fund.

use super::{ConfigError, fund::positive};
use crate::money::Currency;

/// The fee model of the processor (Stripe's card price is a percentage plus a fixed part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeeCover {
    /// The percentage, in hundredths of a percent (2.9% is 290).
    pub percent_hundredths: i64,
    /// The fixed part, minor units of the fund's currency.
    pub fixed_minor: i64,
}

impl FeeCover {
    /// What a donor adds to a gift of `gift_minor` so that, after the processor takes its
    /// percentage and fixed part of the whole charge, the fund receives the gift:
    /// `charge = (gift + fixed) / (1 - percent)`, rounded UP to the minor unit (the fund never
    /// gets less than the gift); the fee covered is `charge - gift`. Integer arithmetic only.
    pub fn to_cover(self, gift_minor: i64) -> i64 {
        let keep = 10_000 - i128::from(self.percent_hundredths);
        let numerator = (i128::from(gift_minor) + i128::from(self.fixed_minor)) * 10_000;
        let charge = (numerator + keep - 1) / keep;
        i64::try_from(charge - i128::from(gift_minor)).unwrap_or(i64::MAX)
    }
}

/// The settings as written, read again in the stored fund's currency.
#[derive(Debug, Clone)]
pub struct FeeText {
    on: bool,
    percent: String,
    fixed: String,
}

impl FeeText {
    /// Reads the three settings (defaults: off, 2.9, 0.30: Stripe's US card price).
    pub(super) fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<FeeText, ConfigError> {
        let on = match var("FEE_COVER").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "FEE_COVER: {other:?} is neither on nor off"
                )));
            }
        };
        Ok(FeeText {
            on,
            percent: var("FEE_PERCENT").unwrap_or_else(|| "2.9".into()),
            fixed: var("FEE_FIXED").unwrap_or_else(|| "0.30".into()),
        })
    }

    /// The fee model in `currency`, when the offer is on.
    pub fn parse(&self, currency: Currency) -> Result<Option<FeeCover>, ConfigError> {
        if !self.on {
            return Ok(None);
        }
        let percent_hundredths = Currency::from_code("USD")
            .map(|two| two.parse_minor(self.percent.trim()))
            .and_then(Result::ok)
            .filter(|p| (0..5_000).contains(p))
            .ok_or_else(|| {
                ConfigError(format!(
                    "FEE_PERCENT: {:?} is not a percentage from 0 to 49.99 with at most two decimals",
                    self.percent
                ))
            })?;
        let fixed_minor = if self.fixed.trim() == "0" {
            0
        } else {
            positive("FEE_FIXED", &self.fixed, currency)?
        };
        Ok(Some(FeeCover {
            percent_hundredths,
            fixed_minor,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<FeeCover>, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        FeeText::from_lookup(&|k: &str| map.get(k).cloned())?.parse(Currency::USD)
    }

    #[test]
    fn off_by_default_and_read_exactly() {
        assert_eq!(read(&[]).expect("off"), None);
        let fee = read(&[("FEE_COVER", "on")]).expect("valid").expect("on");
        assert_eq!((fee.percent_hundredths, fee.fixed_minor), (290, 30));
        for bad in [
            ("FEE_COVER", "yes"),
            ("FEE_PERCENT", "50"),
            ("FEE_PERCENT", "2.955"),
            ("FEE_FIXED", "-1"),
        ] {
            let err = read(&[("FEE_COVER", "on"), bad]).expect_err(bad.1);
            assert!(err.0.starts_with(bad.0), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_fund_receives_at_least_the_gift_and_never_a_cent_more_than_needed() {
        let fee = FeeCover {
            percent_hundredths: 290,
            fixed_minor: 30,
        };
        // 100.00: charge (100.00 + 0.30) / 0.971 = 103.2955... -> 103.30, fee 3.30.
        assert_eq!(fee.to_cover(10_000), 330);
        // 5000.00: (5000.00 + 0.30) / 0.971 = 5149.6395... -> 5149.64, fee 149.64.
        assert_eq!(fee.to_cover(500_000), 14_964);
        for gift in [1, 99, 100, 2_500, 10_000, 123_457, 10_000_000] {
            let cover = fee.to_cover(gift);
            let charge = gift + cover;
            // What the processor keeps, rounded as it may round (to the nearest cent).
            let kept = (charge * 290 + 5_000) / 10_000 + 30;
            assert!(
                charge - kept >= gift - 1,
                "{gift}: charge {charge} keeps {kept}"
            );
            // One cent less would not have been enough before rounding.
            let less = charge - 1;
            assert!(
                (less * (10_000 - 290)) < (gift + 30) * 10_000,
                "{gift}: {less} would do"
            );
        }
    }
}
