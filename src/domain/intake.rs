//! Whether the fund takes new donations, and why not.

use serde::Serialize;

/// Intake state of the fund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntakeState {
    /// Taking donations.
    Open,
    /// An admin stopped intake, with a public message.
    Paused,
    /// Raised reached the target.
    Closed,
}

impl IntakeState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntakeState::Open => "open",
            IntakeState::Paused => "paused",
            IntakeState::Closed => "closed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<IntakeState> {
        match text {
            "open" => Some(IntakeState::Open),
            "paused" => Some(IntakeState::Paused),
            "closed" => Some(IntakeState::Closed),
            _ => None,
        }
    }

    /// The state after raised or the target changed: reaching the target closes intake,
    /// and nothing but an admin's explicit reopening ever opens it.
    pub fn after_totals(self, raised_minor: i64, target_minor: i64) -> IntakeState {
        if raised_minor >= target_minor {
            IntakeState::Closed
        } else {
            self
        }
    }
}

/// What happens to a payment under way when intake closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapMode {
    /// Record it, flagged `after_close`.
    Soft,
    /// Reserve amounts at creation so raised never exceeds the target.
    Strict,
}

impl CapMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapMode::Soft => "soft",
            CapMode::Strict => "strict",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<CapMode> {
        match text {
            "soft" => Some(CapMode::Soft),
            "strict" => Some(CapMode::Strict),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_the_target_closes_and_nothing_reopens_by_itself() {
        assert_eq!(IntakeState::Open.after_totals(99, 100), IntakeState::Open);
        assert_eq!(
            IntakeState::Open.after_totals(100, 100),
            IntakeState::Closed
        );
        assert_eq!(
            IntakeState::Paused.after_totals(150, 100),
            IntakeState::Closed
        );
        assert_eq!(
            IntakeState::Closed.after_totals(10, 100),
            IntakeState::Closed
        );
        for s in [IntakeState::Open, IntakeState::Paused, IntakeState::Closed] {
            assert_eq!(IntakeState::parse(s.as_str()), Some(s));
        }
    }
}
