//! Amount text as donors and treasurers type it (`money::Currency::parse_minor`,
//! `DonationAmount::parse`): whatever the bytes, the parser accepts exactly the documented
//! grammar (digits, optionally a point and 1..=digits decimals, at most 13 integer digits),
//! an accepted amount formats back to the same value, and bounds are applied exactly.
#![no_main]

use crowdledger::money::{AmountBounds, AmountError, Currency, DonationAmount, Money};
use libfuzzer_sys::fuzz_target;

/// The page's default bounds: 1.00 to 100000.00 (in minor units of a two-digit currency).
const BOUNDS: AmountBounds = AmountBounds {
    min_minor: 100,
    max_minor: 10_000_000,
};

/// What the grammar says `text` is, worked out without the parser: the canonical text of the
/// amount (no leading zeros, exactly `digits` decimals), or `None` if it is not an amount.
fn canonical(text: &str, digits: usize) -> Option<String> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(int) || frac.is_some_and(|f| !is_digits(f) || f.len() > digits) {
        return None;
    }
    let significant = int.trim_start_matches('0');
    if significant.len() > 13 {
        return None;
    }
    let whole = if significant.is_empty() {
        "0"
    } else {
        significant
    };
    if digits == 0 {
        return Some(whole.to_owned());
    }
    let mut decimals = frac.unwrap_or_default().to_owned();
    while decimals.len() < digits {
        decimals.push('0');
    }
    Some(format!("{whole}.{decimals}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for code in ["USD", "JPY"] {
        let Some(c) = Currency::from_code(code) else {
            panic!("{code} is a listed currency");
        };
        let digits = c.digits() as usize;
        let parsed = c.parse_minor(text);
        match (canonical(text, digits), parsed) {
            (Some(expected), Ok(minor)) => {
                assert!(minor >= 0, "{text:?} parsed to {minor}");
                assert!(
                    minor < 10_i64.pow(13 + c.digits()),
                    "{text:?} is out of range"
                );
                assert_eq!(c.format(minor), expected, "{text:?} in {code}");
                assert_eq!(c.parse_minor(&c.format(minor)), Ok(minor));
                assert_eq!(c.to_minor(c.to_decimal(minor)), Some(minor));
                assert_eq!(Money::new(minor, c).to_string(), expected);
            }
            (None, Err(_)) => {}
            (expected, got) => {
                panic!("{text:?} in {code}: grammar says {expected:?}, parser {got:?}")
            }
        }
        if parsed == Err(AmountError::TooManyDecimals) {
            assert!(text.split_once('.').is_some_and(|(_, f)| f.len() > digits));
        }
        // The checked type: positive, within the bounds, refused for the right reason.
        let checked = DonationAmount::parse(text, c, BOUNDS);
        match parsed {
            Ok(minor) => {
                let expected = if minor == 0 {
                    Err(AmountError::Zero)
                } else if minor < BOUNDS.min_minor {
                    Err(AmountError::BelowMinimum)
                } else if minor > BOUNDS.max_minor {
                    Err(AmountError::TooLarge)
                } else {
                    Ok(minor)
                };
                assert_eq!(checked.map(DonationAmount::minor), expected, "{text:?}");
            }
            Err(e) => assert_eq!(checked, Err(e), "{text:?}"),
        }
    }
});
