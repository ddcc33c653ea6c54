//! `CHECK_PAYEE` and `CHECK_ADDRESS`: how to give by check, shown on the donor page.

use super::ConfigError;

/// Where checks go: both settings, or none (the page then says nothing about checks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckInstructions {
    /// Whom the check is made payable to.
    pub payee: String,
    /// The mailing address, one line each (`\n` in the setting, or a real newline, breaks a
    /// line).
    pub address: Vec<String>,
}

impl CheckInstructions {
    /// Reads both settings; one without the other is an error.
    pub fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CheckInstructions>, ConfigError> {
        match (var("CHECK_PAYEE"), var("CHECK_ADDRESS")) {
            (None, None) => Ok(None),
            (Some(payee), Some(address)) => {
                let address: Vec<String> = address
                    .replace("\\n", "\n")
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                if address.is_empty() || payee.trim().is_empty() {
                    return Err(ConfigError(
                        "CHECK_PAYEE and CHECK_ADDRESS must not be blank".into(),
                    ));
                }
                Ok(Some(CheckInstructions {
                    payee: payee.trim().to_owned(),
                    address,
                }))
            }
            (Some(_), None) => Err(ConfigError(
                "CHECK_PAYEE needs CHECK_ADDRESS (where donors mail their checks)".into(),
            )),
            (None, Some(_)) => Err(ConfigError(
                "CHECK_ADDRESS needs CHECK_PAYEE (whom checks are made payable to)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<CheckInstructions>, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CheckInstructions::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn both_or_neither_and_lines_split() {
        assert_eq!(read(&[]).expect("none"), None);
        let c = read(&[
            ("CHECK_PAYEE", "CCA"),
            ("CHECK_ADDRESS", "PO Box 1\\nSF, CA"),
        ])
        .expect("valid")
        .expect("some");
        assert_eq!(c.address, ["PO Box 1", "SF, CA"]);
        for one in ["CHECK_PAYEE", "CHECK_ADDRESS"] {
            let err = read(&[(one, "x")]).expect_err(one);
            assert!(err.0.starts_with(one), "{err}");
        }
    }
}
