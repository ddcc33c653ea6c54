//! `REQUIRE_2FA`: which staff accounts must have a second factor before anything else.

use super::ConfigError;
use crate::auth::Role;

/// Who must enrol a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireMfa {
    /// Nobody (a second factor is still offered).
    Off,
    /// Admins (the default): they can refund and manage staff.
    #[default]
    Admin,
    /// Every staff account.
    All,
}

impl RequireMfa {
    /// Reads `REQUIRE_2FA`: `admin` (default), `all` or `off`.
    pub(super) fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<RequireMfa, ConfigError> {
        match var("REQUIRE_2FA").as_deref().map(str::trim) {
            None | Some("admin") => Ok(RequireMfa::Admin),
            Some("all") => Ok(RequireMfa::All),
            Some("off") => Ok(RequireMfa::Off),
            Some(other) => Err(ConfigError(format!(
                "REQUIRE_2FA: {other:?} is not one of admin, all, off"
            ))),
        }
    }

    /// True if an account with `role` must have a second factor.
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            RequireMfa::Off => false,
            RequireMfa::Admin => role == Role::Admin,
            RequireMfa::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Option<&str>) -> Result<RequireMfa, ConfigError> {
        RequireMfa::from_lookup(&|_: &str| v.map(str::to_owned))
    }

    #[test]
    fn admins_by_default_all_or_nobody_when_asked() {
        let admin = read(None).expect("default");
        assert!(admin.applies_to(Role::Admin) && !admin.applies_to(Role::Treasurer));
        assert!(read(Some("all")).expect("all").applies_to(Role::Treasurer));
        assert!(!read(Some("off")).expect("off").applies_to(Role::Admin));
        assert!(read(Some("yes")).is_err());
    }
}
