//! Money at the edges: parsing user input into checked amounts, and converting between the
//! database's integer minor units and the `Decimal` used in Rust code and JSON.
//!
//! This is the only module that knows how many minor digits a currency has.

use rust_decimal::Decimal;
use serde::Serialize;

/// Longest integer part accepted, so that minor units always fit an `i64` with room for sums.
const MAX_INTEGER_DIGITS: usize = 13;

/// A fund's currency: ISO code and how many minor digits its amounts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    digits: u32,
}

/// Currencies a fund may be kept in (Stripe's two-decimal and zero-decimal ones that matter here).
const CURRENCIES: &[Currency] = &[
    Currency {
        code: "USD",
        digits: 2,
    },
    Currency {
        code: "EUR",
        digits: 2,
    },
    Currency {
        code: "GBP",
        digits: 2,
    },
    Currency {
        code: "CAD",
        digits: 2,
    },
    Currency {
        code: "AUD",
        digits: 2,
    },
    Currency {
        code: "NZD",
        digits: 2,
    },
    Currency {
        code: "CHF",
        digits: 2,
    },
    Currency {
        code: "CNY",
        digits: 2,
    },
    Currency {
        code: "HKD",
        digits: 2,
    },
    Currency {
        code: "TWD",
        digits: 2,
    },
    Currency {
        code: "SGD",
        digits: 2,
    },
    Currency {
        code: "JPY",
        digits: 0,
    },
    Currency {
        code: "KRW",
        digits: 0,
    },
];

impl Currency {
    /// US dollars, the default.
    pub const USD: Currency = Currency {
        code: "USD",
        digits: 2,
    };

    /// Looks a currency up by its ISO code (case-insensitive).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES
            .iter()
            .copied()
            .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
    }

    /// The ISO code, upper case.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Minor digits (2 for USD, 0 for JPY).
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// An amount in minor units as a `Decimal` with exactly the currency's minor digits.
    pub fn to_decimal(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.digits)
    }

    /// A `Decimal` in minor units, if it has no more decimals than the currency and fits.
    pub fn to_minor(&self, amount: Decimal) -> Option<i64> {
        let normal = amount.normalize();
        if normal.scale() > self.digits {
            return None;
        }
        let scaled = amount.checked_mul(Decimal::from(10_i64.pow(self.digits)))?;
        i64::try_from(scaled.trunc()).ok()
    }

    /// Formats minor units as the text used in JSON and CSV: `"1000000.00"`.
    pub fn format(&self, minor: i64) -> String {
        self.to_decimal(minor).to_string()
    }

    /// Parses amount text strictly: digits, optionally a point and 1..=digits decimals.
    /// No signs, exponents, separators, blanks or other numerals. Zero is allowed here;
    /// callers that need a positive amount check it (see [`DonationAmount`]).
    pub fn parse_minor(&self, text: &str) -> Result<i64, AmountError> {
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed);
        }
        let int_digits = int_part.trim_start_matches('0');
        if int_digits.len() > MAX_INTEGER_DIGITS {
            return Err(AmountError::TooLarge);
        }
        let frac = match frac_part {
            None => "",
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(AmountError::Malformed);
            }
            Some(f) if f.len() > self.digits as usize => return Err(AmountError::TooManyDecimals),
            Some(f) => f,
        };
        let mut minor: i64 = 0;
        for b in int_digits.bytes().chain(frac.bytes()) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(AmountError::TooLarge)?;
        }
        for _ in frac.len()..self.digits as usize {
            minor = minor.checked_mul(10).ok_or(AmountError::TooLarge)?;
        }
        Ok(minor)
    }
}

/// Stripe's currencies without minor units (its "zero-decimal" list).
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Stripe's currencies with three minor digits.
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// Minor digits of any ISO currency an account may settle in (not only a fund's): a fund
/// currency's own, Stripe's zero- and three-decimal lists, two otherwise.
pub fn minor_digits(code: &str) -> u32 {
    let code = code.trim();
    if let Some(c) = Currency::from_code(code) {
        return c.digits;
    }
    let is = |list: &[&str]| list.iter().any(|c| c.eq_ignore_ascii_case(code));
    if is(ZERO_DECIMAL) {
        0
    } else if is(THREE_DECIMAL) {
        3
    } else {
        2
    }
}

/// Formats minor units of any currency (see [`minor_digits`]) as JSON and CSV write amounts.
pub fn format_minor(code: &str, minor: i64) -> String {
    Decimal::new(minor, minor_digits(code)).to_string()
}

/// Why amount text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not plain digits with an optional decimal point.
    #[error("write the amount as digits with an optional decimal point, e.g. \"25.00\"")]
    Malformed,
    /// More decimals than the currency has.
    #[error("the amount has more decimals than the currency allows")]
    TooManyDecimals,
    /// Zero is not a gift.
    #[error("the amount must be more than zero")]
    Zero,
    /// Below the configured minimum.
    #[error("the amount is below the minimum")]
    BelowMinimum,
    /// Above the configured maximum (or too large to be real).
    #[error("the amount is above the maximum")]
    TooLarge,
}

/// Bounds an amount must fall within, in minor units (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountBounds {
    /// Smallest accepted amount.
    pub min_minor: i64,
    /// Largest accepted amount.
    pub max_minor: i64,
}

/// A checked, positive donation amount within the configured bounds, in minor units.
///
/// Only [`DonationAmount::parse`] makes one, so code that takes it never re-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DonationAmount(i64);

impl DonationAmount {
    /// Parses user text (`"25"`, `"25.5"`, `"25.50"`) into a positive amount within `bounds`.
    pub fn parse(
        text: &str,
        currency: Currency,
        bounds: AmountBounds,
    ) -> Result<DonationAmount, AmountError> {
        let minor = currency.parse_minor(text)?;
        if minor == 0 {
            return Err(AmountError::Zero);
        }
        if minor < bounds.min_minor {
            return Err(AmountError::BelowMinimum);
        }
        if minor > bounds.max_minor {
            return Err(AmountError::TooLarge);
        }
        Ok(DonationAmount(minor))
    }

    /// The amount in minor units (cents).
    pub fn minor(self) -> i64 {
        self.0
    }

    /// What is charged for this gift when the donor also covers `fee_minor` of processing
    /// fee (`FEE_COVER`): the checked gift plus the fee, which may take it past the maximum by
    /// that fee.
    pub fn with_fee(self, fee_minor: i64) -> DonationAmount {
        DonationAmount(self.0.saturating_add(fee_minor.max(0)))
    }
}

/// An amount as it appears in JSON: a string with exactly the currency's minor digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Money(#[serde(with = "rust_decimal::serde::str")] Decimal);

impl Money {
    /// Minor units of `currency` as a JSON amount.
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money(currency.to_decimal(minor))
    }

    /// The decimal value.
    pub fn decimal(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: AmountBounds = AmountBounds {
        min_minor: 100,
        max_minor: 10_000_000,
    };

    #[test]
    fn any_settlement_currency_is_formatted_with_its_digits() {
        assert_eq!(format_minor("usd", 190), "1.90");
        assert_eq!(format_minor("JPY", 190), "190");
        assert_eq!(format_minor("clp", 190), "190");
        assert_eq!(format_minor("kwd", 1900), "1.900");
        assert_eq!(format_minor("mxn", -5), "-0.05");
    }

    #[test]
    fn accepts_the_documented_forms() {
        let usd = Currency::USD;
        assert_eq!(usd.parse_minor("25"), Ok(2500));
        assert_eq!(usd.parse_minor("25.5"), Ok(2550));
        assert_eq!(usd.parse_minor("25.50"), Ok(2550));
        assert_eq!(usd.format(100_000_000), "1000000.00");
        assert_eq!(usd.format(1), "0.01");
    }

    #[test]
    fn refuses_hostile_forms() {
        for text in [
            "1,000.00", "1e3", "-5", "+5", "0.001", "NaN", "", " ", "25.", ".5", "inf", "0x10",
            "٣", "2 5", "25 ", "1_000",
        ] {
            assert!(
                DonationAmount::parse(text, Currency::USD, BOUNDS).is_err(),
                "{text:?} was accepted"
            );
        }
        assert_eq!(
            DonationAmount::parse("0", Currency::USD, BOUNDS),
            Err(AmountError::Zero)
        );
        assert_eq!(
            DonationAmount::parse("100000.01", Currency::USD, BOUNDS),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn zero_decimal_currencies_refuse_decimals() {
        let jpy = Currency::from_code("jpy").expect("JPY is listed");
        assert_eq!(jpy.parse_minor("500"), Ok(500));
        assert_eq!(jpy.parse_minor("500.5"), Err(AmountError::TooManyDecimals));
        assert_eq!(jpy.format(500), "500");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        const WIDE: AmountBounds = AmountBounds {
            min_minor: 1,
            max_minor: i64::MAX,
        };

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Arbitrary text never panics, and whatever is accepted is plain digits with at
            /// most two decimals that formats back to the same value.
            #[test]
            fn any_text_is_parsed_safely(text in any::<String>()) {
                if let Ok(a) = DonationAmount::parse(&text, Currency::USD, WIDE) {
                    prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
                    let formatted = Currency::USD.format(a.minor());
                    prop_assert_eq!(Currency::USD.parse_minor(&formatted), Ok(a.minor()));
                    let normal: rust_decimal::Decimal = text.parse().expect("decimal");
                    prop_assert_eq!(Currency::USD.to_decimal(a.minor()), normal);
                }
            }

            /// Near-miss strings built from amount characters and the usual suspects.
            #[test]
            fn hostile_shapes_are_refused(
                text in r"[0-9]{0,4}[,eE+_ NaInf٣-]{1,2}[0-9.]{0,4}",
            ) {
                prop_assert!(DonationAmount::parse(&text, Currency::USD, WIDE).is_err());
            }

            /// Minor units survive text and Decimal round trips exactly.
            #[test]
            fn money_round_trips_exactly(minor in 0i64..=999_999_999_999_999) {
                let c = Currency::USD;
                let text = c.format(minor);
                prop_assert_eq!(c.parse_minor(&text), Ok(minor));
                prop_assert_eq!(c.to_minor(c.to_decimal(minor)), Some(minor));
                let (int, frac) = text.split_once('.').expect("two decimals");
                prop_assert_eq!(frac.len(), 2);
                prop_assert!(!int.is_empty());
            }

            /// More decimals than the currency has are refused, never rounded.
            #[test]
            fn extra_decimals_are_never_rounded(int in 0u32..100_000, frac in 0u32..1000) {
                let text = format!("{int}.{frac:03}");
                prop_assert_eq!(Currency::USD.parse_minor(&text), Err(AmountError::TooManyDecimals));
            }
        }
    }
}
