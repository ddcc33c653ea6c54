//! How raised money covers the legal-fee periods: oldest first, the rest unallocated.

/// A period's place in the allocation order and its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodBudget {
    /// Period id.
    pub id: i64,
    /// Sort key: the period's start date (as days or any monotonic number).
    pub order: (chrono::NaiveDate, i64),
    /// Budget in minor units.
    pub budget_minor: i64,
}

/// Raised money spread over periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// `(period id, covered minor units)` in allocation order.
    pub covered: Vec<(i64, i64)>,
    /// What exceeds every budget.
    pub unallocated_minor: i64,
}

impl Allocation {
    /// Covered amount of one period (0 if unknown).
    pub fn covered_of(&self, id: i64) -> i64 {
        self.covered
            .iter()
            .find(|(pid, _)| *pid == id)
            .map_or(0, |(_, c)| *c)
    }
}

/// Covers periods in start order (ties by id) with `raised_minor`; a negative raised (more
/// refunded than given, which the ledger never allows) covers nothing.
pub fn allocate(raised_minor: i64, periods: &[PeriodBudget]) -> Allocation {
    let mut sorted: Vec<&PeriodBudget> = periods.iter().collect();
    sorted.sort_by_key(|p| p.order);
    let mut left = raised_minor.max(0);
    let covered = sorted
        .into_iter()
        .map(|p| {
            let c = left.min(p.budget_minor.max(0));
            left -= c;
            (p.id, c)
        })
        .collect();
    Allocation {
        covered,
        unallocated_minor: left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn period(id: i64, month: u32, budget: i64) -> PeriodBudget {
        let d = NaiveDate::from_ymd_opt(2020, month, 1).expect("valid date");
        PeriodBudget {
            id,
            order: (d, id),
            budget_minor: budget,
        }
    }

    #[test]
    fn oldest_period_first_then_unallocated() {
        let periods = [period(2, 9, 4000), period(1, 8, 6000)];
        let a = allocate(12_000, &periods);
        assert_eq!(a.covered, vec![(1, 6000), (2, 4000)]);
        assert_eq!(a.unallocated_minor, 2000);
        let a = allocate(7000, &periods);
        assert_eq!(a.covered_of(1), 6000);
        assert_eq!(a.covered_of(2), 1000);
        assert_eq!(a.unallocated_minor, 0);
    }

    proptest! {
        #[test]
        fn coverage_sums_to_min_of_raised_and_budgets(
            raised in 0i64..10_000_000,
            budgets in proptest::collection::vec(0i64..1_000_000, 0..8),
        ) {
            let periods: Vec<_> = budgets.iter().enumerate()
                .map(|(i, b)| period(i as i64, (i % 12) as u32 + 1, *b)).collect();
            let a = allocate(raised, &periods);
            let covered: i64 = a.covered.iter().map(|(_, c)| c).sum();
            let total: i64 = budgets.iter().sum();
            prop_assert_eq!(covered, raised.min(total));
            prop_assert_eq!(covered + a.unallocated_minor, raised);
        }
    }
}
