//! What must hold after every step, read from the database and the published snapshot, and
//! compared with the model: nothing lost, nothing doubled, no negative money, coverage that
//! adds up, and a hash chain that verifies.

use std::collections::BTreeMap;

use crowdledger::db::DbConn;
use crowdledger::db::models::DonationRow;
use crowdledger::db::schema::{donations, ledger_entries, outbox, refund_requests, stripe_events};
use crowdledger::ledger::verify::verify;
use crowdledger::ledger::{FundState, LedgerWriter};
use crowdledger::money::Money;
use crowdledger::reports::Allocator;
use crowdledger::reports::donations::walk;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::plan::USD;
use super::world::{ACTIVE_ADMINS, Intake, Kind, MFact, Model, RefundState, settles_later};

/// Turns any error into a failed case.
pub trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError> {
        self.ok_or_else(|| TestCaseError::fail(format!("{what}: missing")))
    }
}

/// Every donation row, as text (for "nothing changed" comparisons).
pub fn donation_rows(conn: &mut DbConn) -> Result<String, TestCaseError> {
    let rows: Vec<DonationRow> = donations::table
        .order(donations::id.asc())
        .select(DonationRow::as_select())
        .load(conn)
        .or_fail("donations")?;
    Ok(format!("{rows:?}"))
}

fn counted(d: &DonationRow) -> i64 {
    if d.status == "succeeded" {
        d.amount_minor - d.refunded_minor - d.disputed_minor
    } else {
        0
    }
}

/// Checks every invariant.
pub fn check(model: &Model, conn: &mut DbConn, writer: &LedgerWriter) -> Result<(), TestCaseError> {
    let st = FundState::load(conn).or_fail("fund")?;
    let row = &st.row;
    let rows: Vec<DonationRow> = donations::table
        .order(donations::id.asc())
        .select(DonationRow::as_select())
        .load(conn)
        .or_fail("donations")?;

    // Each donation as the model says: nothing lost, nothing recorded twice.
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let expected_ids: Vec<i64> = model.donations.keys().copied().collect();
    prop_assert_eq!(&ids, &expected_ids, "the donations recorded");
    for d in &rows {
        let m = &model.donations[&d.id];
        let v = model.view(m);
        prop_assert_eq!(d.amount_minor, m.amount);
        prop_assert_eq!(d.status.as_str(), v.status, "status of donation {}", d.id);
        prop_assert_eq!(
            d.refunded_minor,
            v.refunded,
            "refunded of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.disputed_minor,
            v.disputed,
            "disputed of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.dispute_status.as_deref(),
            v.dispute,
            "dispute of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.after_close,
            m.after_close.unwrap_or(false),
            "after_close of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.reserved_until.is_some(),
            model.reserves(m),
            "reservation of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.processing_since.is_some(),
            v.processing,
            "processing of donation {}",
            d.id
        );
        prop_assert_eq!(
            d.payment_method_type.as_deref(),
            v.method,
            "payment method of donation {}",
            d.id
        );
        if let Kind::Card(c) = &m.kind {
            let tied = c.attached || v.status == "succeeded";
            prop_assert_eq!(
                d.payment_intent_id.as_deref(),
                tied.then_some(c.pi.as_str()),
                "intent of donation {}",
                d.id
            );
        }
    }
    // Raised: the fund's running total, the donations' own figures and the model agree.
    let succeeded: i64 = rows
        .iter()
        .filter(|d| d.status == "succeeded")
        .map(|d| d.amount_minor)
        .sum();
    let refunds: i64 = rows.iter().map(|d| d.refunded_minor).sum();
    let withdrawn: i64 = rows.iter().map(|d| d.disputed_minor).sum();
    prop_assert_eq!(
        row.raised_minor,
        succeeded - refunds - withdrawn,
        "raised = succeeded - refunds - disputes"
    );
    prop_assert_eq!(row.raised_minor, model.raised(), "raised as the model says");

    // No negative money anywhere.
    prop_assert!(row.raised_minor >= 0 && row.reserved_minor >= 0 && row.donation_count >= 0);
    for d in &rows {
        prop_assert!(
            d.amount_minor > 0
                && d.refunded_minor >= 0
                && d.disputed_minor >= 0
                && d.refunded_minor + d.disputed_minor <= d.amount_minor,
            "donation {} has impossible figures: {:?}",
            d.id,
            d
        );
        if d.status != "succeeded" {
            prop_assert!(
                d.refunded_minor == 0 && d.disputed_minor == 0,
                "unpaid donation {} lost money",
                d.id
            );
        }
    }
    let lowest: Option<i64> = ledger_entries::table
        .select(min(ledger_entries::raised_after_minor))
        .first(conn)
        .or_fail("ledger minimum")?;
    prop_assert!(
        lowest.unwrap_or(0) >= 0,
        "raised went negative in the ledger"
    );

    // Counts.
    let counting = rows.iter().filter(|d| counted(d) > 0).count() as i64;
    prop_assert_eq!(
        row.donation_count,
        counting,
        "donation_count = donations still counting"
    );
    prop_assert_eq!(
        row.donation_count,
        model.count(),
        "donation_count as the model says"
    );

    // Target, intake, reservations.
    prop_assert_eq!(row.target_minor, model.target);
    prop_assert_eq!(row.intake_state.as_str(), model.intake.as_str(), "intake");
    if model.intake != Intake::Closed {
        prop_assert!(
            row.raised_minor < row.target_minor,
            "intake {} although raised reached the target",
            row.intake_state
        );
    }
    let holding: i64 = rows
        .iter()
        .filter(|d| d.reserved_until.is_some())
        .map(|d| d.amount_minor)
        .sum();
    prop_assert_eq!(
        row.reserved_minor,
        holding,
        "reserved = donations holding a reservation"
    );
    prop_assert_eq!(
        row.reserved_minor,
        model.reserved(),
        "reserved as the model says"
    );

    let recorded: Vec<(Option<i64>, i64)> = ledger_entries::table
        .filter(ledger_entries::kind.eq("donation"))
        .group_by(ledger_entries::donation_id)
        .select((ledger_entries::donation_id, count_star()))
        .load(conn)
        .or_fail("donation entries")?;
    let once: BTreeMap<i64, i64> = recorded
        .into_iter()
        .filter_map(|(d, n)| d.map(|d| (d, n)))
        .collect();
    for d in &rows {
        let n = once.get(&d.id).copied().unwrap_or(0);
        prop_assert_eq!(
            n,
            i64::from(d.status == "succeeded"),
            "donation {} recorded {} times",
            d.id,
            n
        );
    }
    check_new_states(model, conn, &rows)?;

    let receipts: i64 = outbox::table
        .filter(outbox::kind.eq("receipt"))
        .count()
        .get_result(conn)
        .or_fail("receipts")?;
    let paid = rows.iter().filter(|d| d.status == "succeeded").count() as i64;
    prop_assert_eq!(receipts, paid, "one receipt per recorded donation");

    // Events: each id recorded once; kept exactly while its payment is not recorded.
    let events: BTreeMap<String, bool> = stripe_events::table
        .select((
            stripe_events::event_id,
            stripe_events::applied_at.is_not_null(),
        ))
        .load::<(String, bool)>(conn)
        .or_fail("events")?
        .into_iter()
        .collect();
    prop_assert_eq!(
        events.len(),
        model.delivered.len(),
        "one row per event id delivered"
    );
    for e in &model.delivered {
        let applied = events.get(&e.id).copied();
        prop_assert_eq!(
            applied,
            Some(!model.kept(e)),
            "event {} ({:?}) applied",
            &e.id,
            &e.fact
        );
    }

    check_coverage(model, conn, &st)?;

    // The public snapshot shows what the database holds.
    let snap = writer.snapshot().get().or_fail("snapshot")?;
    let view = &snap.view;
    prop_assert_eq!(
        view.raised,
        Money::new(row.raised_minor, USD),
        "snapshot raised"
    );
    prop_assert_eq!(view.donation_count, row.donation_count, "snapshot count");
    prop_assert_eq!(
        view.intake.state.as_str(),
        row.intake_state.as_str(),
        "snapshot intake"
    );

    // The hash chain and every total recompute.
    let report = verify(conn).or_fail("verify")?;
    prop_assert!(report.is_ok(), "verify: {:?}", report.problems);
    Ok(())
}

fn emails(conn: &mut DbConn, kind: &str) -> Result<i64, TestCaseError> {
    outbox::table
        .filter(outbox::kind.eq(kind))
        .count()
        .get_result(conn)
        .or_fail(kind)
}

/// Processing, failures after processing, payment methods and refunds that settle later.
fn check_new_states(
    model: &Model,
    conn: &mut DbConn,
    rows: &[DonationRow],
) -> Result<(), TestCaseError> {
    for d in rows {
        // Money on its way never counts.
        if d.processing_since.is_some() && d.status != "succeeded" {
            prop_assert_eq!(counted(d), 0, "processing donation {} counts", d.id);
        }
        if !settles_later(d.payment_method_type.as_deref()) {
            continue;
        }
        // Of a bank debit, Alipay or WeChat Pay payment only refunds Stripe said succeeded were
        // taken out: a pending or failed one never lowered raised (whatever `charge.refunded` said).
        let succeeded: std::collections::BTreeSet<(u32, i64)> = model
            .delivered
            .iter()
            .filter(|e| e.donation == d.id)
            .filter_map(|e| match e.fact {
                MFact::RefundUpdate(k, a, RefundState::Succeeded) => Some((k, a)),
                _ => None,
            })
            .collect();
        let most: i64 = succeeded.iter().map(|(_, a)| a).sum();
        prop_assert!(
            d.refunded_minor <= most,
            "{} donation {} refunded {} but only {} succeeded at Stripe",
            d.payment_method_type.as_deref().unwrap_or_default(),
            d.id,
            d.refunded_minor,
            most
        );
    }

    // The rows of asynchronous refunds, by Stripe's id, in the state the model says.
    let found: Vec<(i64, Option<String>, String)> = refund_requests::table
        .filter(refund_requests::stripe_refund_id.is_not_null())
        .select((
            refund_requests::donation_id,
            refund_requests::stripe_refund_id,
            refund_requests::state,
        ))
        .order(refund_requests::id.asc())
        .load(conn)
        .or_fail("refund requests")?;
    let found: BTreeMap<(i64, String), String> = found
        .into_iter()
        .map(|(d, re, state)| ((d, re.unwrap_or_default()), state))
        .collect();
    let mut expected: BTreeMap<(i64, String), String> = BTreeMap::new();
    let mut failed_refunds = 0;
    let mut payment_failed = 0;
    for m in model.donations.values() {
        let v = model.view(m);
        for (re, state) in &v.refund_rows {
            expected.insert((m.id, re.clone()), (*state).to_owned());
        }
        failed_refunds += v.failed_refunds;
        payment_failed += i64::from(v.payment_failed_email);
    }
    prop_assert_eq!(&found, &expected, "the rows of refunds that settle later");

    // Emails: the donor of a refused bank debit once; each active admin once per failed
    // refund.
    prop_assert_eq!(
        emails(conn, "payment_failed")?,
        payment_failed,
        "payment_failed emails"
    );
    prop_assert_eq!(
        emails(conn, "refund_failed")?,
        failed_refunds * ACTIVE_ADMINS,
        "refund_failed emails"
    );
    Ok(())
}

/// Periods: each covered as the model says, the coverage summing to min(raised, budgets), and
/// the per-donation allocation of the reports filling the periods in recording order.
fn check_coverage(model: &Model, conn: &mut DbConn, st: &FundState) -> Result<(), TestCaseError> {
    let raised = st.row.raised_minor;
    let budgets: i64 = st.periods.iter().map(|p| p.budget_minor).sum();
    let snap_cover: Vec<(i64, i64)> = st.allocation().covered;
    let model_cover = model.coverage();
    prop_assert_eq!(&snap_cover, &model_cover, "coverage by period");
    let total: i64 = snap_cover.iter().map(|(_, c)| c).sum();
    prop_assert_eq!(
        total,
        raised.min(budgets),
        "coverage = min(raised, budgets)"
    );

    let mut allocator = Allocator::new(st.periods.clone());
    let order: Vec<(i64, i64)> = allocator
        .periods()
        .iter()
        .map(|p| (p.id, p.budget_minor))
        .collect();
    let mut filled = vec![0_i64; order.len()];
    let mut last = 0_usize;
    let mut problem = None;
    walk(conn, &mut allocator, |line| {
        let room: i64 = order.iter().map(|(_, b)| b).sum::<i64>() - filled.iter().sum::<i64>();
        let given: i64 = line.allocation.iter().map(|(_, m)| m).sum();
        if given != line.counted.min(room) {
            problem = Some(format!(
                "donation {} got {given} of {} with {room} room",
                line.row.id, line.counted
            ));
        }
        for (i, m) in &line.allocation {
            if *i < last || filled[..*i].iter().zip(&order).any(|(f, (_, b))| f < b) {
                problem = Some(format!(
                    "donation {} skipped ahead to period {i}",
                    line.row.id
                ));
            }
            last = *i;
            filled[*i] += m;
        }
        true
    })
    .or_fail("walk")?;
    if let Some(p) = problem {
        return Err(TestCaseError::fail(format!(
            "allocation out of recording order: {p}"
        )));
    }
    let walked: Vec<(i64, i64)> = order.iter().map(|(id, _)| *id).zip(filled).collect();
    prop_assert_eq!(
        &walked,
        &snap_cover,
        "per-donation allocations add up to the coverage"
    );
    Ok(())
}
