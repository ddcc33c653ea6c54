//! The ledger as a state machine, property-tested against a simple model (in the manner of
//! TigerBeetle's simulator and Formance's always-true invariants).
//!
//! Random sequences of card donations and what Stripe does to them (success, failure,
//! cancellation, refunds, disputes won or lost; bank debits processing then succeeding or
//! refused, ACH returns; the charge naming its method; bank-debit, Alipay and WeChat Pay
//! refunds that are pending first and succeed or fail later), with the webhooks delivered
//! late, out of order and more than once; offline gifts with reused idempotency keys (same and changed bodies);
//! refunds by admins; intake paused and reopened; target and period budget changes; strict
//! reservations expiring; all in soft or strict cap mode. Each step goes through the real
//! `LedgerWriter` into a real database (the engine of `TEST_DATABASE`), built as the HTTP
//! handlers and the payments worker build their commands; some steps are submitted together
//! so they share a batch. After every step `checks::check` compares the ledger with the model
//! and with its own invariants.
//!
//! `MODEL_CASES` (or `PROPTEST_CASES`) sets the number of cases, `MODEL_STEPS` the longest
//! sequence, `MODEL_SEED` the seed (random otherwise; printed either way). A failure prints
//! the minimal sequence; its seed is saved in `tests/api/model-regressions.txt` and replayed
//! first on every later run. `benches/model.sh` runs 10,000 cases.

mod actions;
mod checks;
mod commands;
mod harness;
mod outside;
mod plan;
mod store;
mod world;

use std::time::Instant;

use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestError, TestRunner};

/// Cases in a normal test run: SQLite about 10 s, PostgreSQL (a database per case) about 15 s.
const DEFAULT_CASES_SQLITE: u32 = 64;
const DEFAULT_CASES_POSTGRES: u32 = 16;
/// Longest sequence by default.
const DEFAULT_STEPS: usize = 40;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_ledger_agrees_with_the_model_after_every_step() {
    let postgres = crate::helpers::engine_is_postgres();
    let engine = if postgres { "postgres" } else { "sqlite" };
    let cases = env("MODEL_CASES")
        .or_else(|| env("PROPTEST_CASES"))
        .unwrap_or(if postgres {
            DEFAULT_CASES_POSTGRES
        } else {
            DEFAULT_CASES_SQLITE
        });
    let steps = env("MODEL_STEPS").unwrap_or(DEFAULT_STEPS).max(2);
    let seed: u64 = env("MODEL_SEED").unwrap_or_else(rand::random);
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/model-regressions.txt",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    });
    let template = store::Template::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runs = std::cell::Cell::new(0_u64);
    let started = Instant::now();
    let result = runner.run(&actions::case(steps), |case| {
        runs.set(runs.get() + 1);
        harness::run_case(&template, &rt, &case)
    });
    let secs = started.elapsed().as_secs_f64();
    if let Ok(t) = harness::TALLY.lock() {
        let lines: Vec<String> = t.iter().map(|(k, n)| format!("  {n:>8}  {k}")).collect();
        eprintln!("model: what the cases exercised:\n{}", lines.join("\n"));
    }
    match result {
        Ok(()) => eprintln!(
            "model: {cases} cases passed on {engine} ({} runs, saved regressions included) in {secs:.1} s; seed {seed} (MODEL_SEED={seed} repeats them)",
            runs.get()
        ),
        Err(TestError::Fail(why, case)) => panic!(
            "model: failed on {engine} after {} runs in {secs:.1} s; seed {seed} (MODEL_SEED={seed} repeats it)\n{why}\nminimal case:\n{case:#?}",
            runs.get()
        ),
        Err(TestError::Abort(why)) => panic!("model: aborted on {engine}; seed {seed}: {why}"),
    }
}

/// Runs one hand-written case on a fresh database of the test engine.
fn replay(case: actions::Case) {
    let template = store::Template::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = harness::run_case(&template, &rt, &case) {
        panic!("{e}\ncase: {case:#?}");
    }
}

fn card(amount: i64) -> actions::Action {
    actions::Action::CreateCard {
        amount,
        key: None,
        variant: 0,
        intent: actions::Intent::Attached,
    }
}

/// Found by the model: in one batch, a refund kept for a payment not yet recorded was
/// written out by another payment's success, and the batch then forgot that any event was
/// kept, so the refunded payment's own success never applied it (money refunded at Stripe
/// still counted in raised).
#[test]
fn a_kept_refund_is_applied_when_its_payment_succeeds_later_in_the_same_batch() {
    use actions::{Action::*, Pick, StripeAct};
    replay(actions::Case {
        strict: false,
        target: 100_000,
        steps: vec![
            card(1_000),
            card(2_000),
            Stripe(Pick(0), StripeAct::Succeed),
            Stripe(Pick(0), StripeAct::Succeed),
            Stripe(Pick(0), StripeAct::Refund(None)),
            // The refund of the first, the second's success, then the first's success.
            Burst(vec![Deliver(Pick(2)), Deliver(Pick(1)), Deliver(Pick(0))]),
        ],
    });
}

/// Found by the model: a dispute won reinstates funds, which may take raised to the target;
/// intake stayed open with raised past the target.
#[test]
fn a_won_dispute_that_reaches_the_target_closes_intake() {
    use actions::{Action::*, Pick, StripeAct};
    replay(actions::Case {
        strict: false,
        target: 5_000,
        steps: vec![
            card(3_000),
            Stripe(Pick(0), StripeAct::Succeed),
            DeliverNext,
            Stripe(Pick(0), StripeAct::DisputeOpen),
            DeliverNext,
            Offline {
                amount: 2_500,
                key: None,
                variant: 0,
            },
            Stripe(Pick(0), StripeAct::DisputeClose { won: true }),
            DeliverNext,
        ],
    });
}

/// An Alipay payment's refunds settle later: each counts once, when Stripe says it
/// succeeded, whatever order its events come in. The first refund's `succeeded` update comes
/// before its `pending` creation and before the payment's own success (all kept, then applied
/// oldest first); the second's `succeeded` update comes first after the success; the third
/// fails (said twice: nothing lowered, each admin emailed once). `charge.refunded`, whose
/// total counts pending refunds, changes nothing.
#[test]
fn alipay_refunds_count_once_when_they_succeed_in_any_order() {
    use actions::{Action::*, Pick, StripeAct::*};
    let settle = |ok, twice| RefundSettles {
        refund: Pick(0),
        ok,
        twice,
    };
    replay(actions::Case {
        strict: false,
        target: 100_000,
        steps: vec![
            // Donation 1 is paid by Alipay (`outside::method_of`).
            card(5_000),
            // In flight: the success, then the charge naming Alipay.
            Stripe(Pick(0), Succeed),
            Deliver(Pick(1)),
            // A refund of 2,000: `refund.created` (pending), `charge.refunded` (2,000).
            Stripe(Pick(0), AsyncRefund(Some(400))),
            // It succeeds: `refund.updated`, `charge.refund.updated`.
            Stripe(Pick(0), settle(true, true)),
            // Succeeded, pending, charge.refunded: all kept; then the success applies them.
            Deliver(Pick(3)),
            Deliver(Pick(1)),
            Deliver(Pick(1)),
            DeliverNext,
            DeliverNext,
            Redeliver(Pick(2)),
            // A second refund of 1,500: its success first, then its creation, then the total.
            Stripe(Pick(0), AsyncRefund(Some(500))),
            Stripe(Pick(0), settle(true, false)),
            Deliver(Pick(2)),
            DeliverNext,
            DeliverNext,
            // A third refund of all that is left fails, said twice, in one shuffled batch.
            Stripe(Pick(0), AsyncRefund(None)),
            Stripe(Pick(0), settle(false, true)),
            Flush(7),
            Redeliver(Pick(5)),
        ],
    });
}

/// A bank debit processing in strict mode keeps its reservation (the sweep and the
/// cancelling of open intents leave it alone) and counts when it succeeds, after intake
/// closed.
#[test]
fn a_processing_bank_debit_succeeds_after_intake_closed_in_strict_mode() {
    use actions::{Action::*, Pick, StripeAct::*};
    replay(actions::Case {
        strict: true,
        target: 5_000,
        steps: vec![
            card(3_000),
            // `payment_intent.processing`, `charge.pending` (us_bank_account).
            Stripe(Pick(0), Process),
            DeliverNext,
            DeliverNext,
            Expire(Pick(0)),
            Offline {
                amount: 5_000,
                key: None,
                variant: 0,
            },
            CancelOutstanding,
            Expire(Pick(0)),
            Stripe(Pick(0), Succeed),
            Flush(3),
        ],
    });
}

/// A bank debit refused after processing fails its donation, frees its reservation and
/// tells the donor once; the ACH return of another, after its success, withdraws it.
#[test]
fn a_refused_bank_debit_and_an_ach_return() {
    use actions::{Action::*, Pick, StripeAct::*};
    replay(actions::Case {
        strict: true,
        target: 50_000,
        steps: vec![
            card(3_000),
            card(4_000),
            Stripe(Pick(0), Process),
            Stripe(Pick(1), Process),
            Flush(1),
            Stripe(Pick(0), Fail),
            DeliverNext,
            Redeliver(Pick(0)),
            Stripe(Pick(0), Succeed),
            Flush(2),
            Stripe(Pick(0), AchReturn { only_closed: false }),
            Deliver(Pick(1)),
            DeliverNext,
        ],
    });
}
