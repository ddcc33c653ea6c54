//! `APPROVAL_THRESHOLD`: refunds above it wait for a second admin's approval.

use super::{ConfigError, fund::positive};
use crate::money::Currency;

/// The setting as written (default `1000`, whole units so it reads in any currency), read
/// again in the stored fund's currency by [`super::Config::adopt_fund`].
#[derive(Debug, Clone)]
pub struct ApprovalText(Option<String>);

impl ApprovalText {
    /// Reads `APPROVAL_THRESHOLD`: an amount, or `off`.
    pub(super) fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> ApprovalText {
        match var("APPROVAL_THRESHOLD") {
            Some(t) if t.trim().eq_ignore_ascii_case("off") => ApprovalText(None),
            Some(t) => ApprovalText(Some(t)),
            None => ApprovalText(Some("1000".into())),
        }
    }

    /// The threshold in `currency`'s minor units; `None` when approvals are off.
    pub fn parse(&self, currency: Currency) -> Result<Option<i64>, ConfigError> {
        self.0
            .as_deref()
            .map(|t| positive("APPROVAL_THRESHOLD", t, currency))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: Option<&str>) -> Result<Option<i64>, ConfigError> {
        ApprovalText::from_lookup(&|k: &str| {
            assert_eq!(k, "APPROVAL_THRESHOLD");
            value.map(str::to_owned)
        })
        .parse(Currency::USD)
    }

    #[test]
    fn defaults_to_1000_and_can_be_set_or_turned_off() {
        assert_eq!(read(None).expect("default"), Some(100_000));
        assert_eq!(read(Some("250.50")).expect("set"), Some(25_050));
        assert_eq!(read(Some("off")).expect("off"), None);
        assert_eq!(read(Some(" OFF ")).expect("off"), None);
        for bad in ["0", "-5", "lots", "1.234"] {
            let err = read(Some(bad)).expect_err(bad);
            assert!(err.0.starts_with("APPROVAL_THRESHOLD"), "{bad}: {err}");
        }
    }
}
