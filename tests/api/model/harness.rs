//! Drives the real ledger through a case: one `LedgerWriter` on a fresh database, the steps
//! submitted as the HTTP handlers and the payments worker submit them, the answers compared
//! with the model's, and every invariant checked after every step.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crowdledger::config::FundDefaults;
use crowdledger::db::models::DonationRow;
use crowdledger::db::schema::donations;
use crowdledger::db::{self, DbConn};
use crowdledger::domain::CapMode;
use crowdledger::error::AppError;
use crowdledger::ledger::ops::Refresh;
use crowdledger::ledger::{BatchTuning, Ctx, Effect, FundState, LedgerWriter, Op};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;

use super::actions::{Action, Case};
use super::checks::{self, OrFail};
use super::commands;
use super::plan::{self, Expect, Got, Planned, USD};
use super::store::Template;
use super::world::{KeyState, Model};

/// One case in progress.
pub(super) struct Run<'a> {
    pub(super) model: Model,
    pub(super) writer: LedgerWriter,
    effects: UnboundedReceiver<Effect>,
    /// The handlers' and workers' read connection, and the checks'.
    pub(super) conn: DbConn,
    pub(super) rt: &'a Runtime,
    /// A step so far added money no reservation covered (strict mode cannot cap that).
    unreserved_ever: bool,
}

/// Runs one case against a fresh database.
pub fn run_case(template: &Template, rt: &Runtime, case: &Case) -> Result<(), TestCaseError> {
    let store = template.fresh();
    let (tx, effects) = tokio::sync::mpsc::unbounded_channel();
    let defaults = FundDefaults {
        name: "Model Fund".into(),
        currency: USD,
        target_minor: case.target,
        cap_mode: if case.strict {
            CapMode::Strict
        } else {
            CapMode::Soft
        },
    };
    let writer = LedgerWriter::start(&store.url, &defaults, BatchTuning::default(), Some(tx))
        .or_fail("writer starts")?;
    let conn = db::establish(&store.url).or_fail("database reachable")?;
    let mut run = Run {
        model: Model::new(case.strict, case.target),
        writer,
        effects,
        conn,
        rt,
        unreserved_ever: false,
    };
    checks::check(&run.model, &mut run.conn, &run.writer).map_err(|e| at(0, "start", e))?;
    for (n, step) in case.steps.iter().enumerate() {
        run.step(step)
            .map_err(|e| at(n + 1, &format!("{step:?}"), e))?;
    }
    let stats = run.writer.stats();
    tally_n(
        "batches re-run with a savepoint per command",
        stats
            .isolated_reruns
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    drop(run);
    drop(store);
    Ok(())
}

/// How often each kind of outcome happened over the whole run (printed at the end).
pub static TALLY: Mutex<std::collections::BTreeMap<String, u64>> =
    Mutex::new(std::collections::BTreeMap::new());

pub(super) fn tally(label: &str) {
    tally_n(label, 1);
}

fn tally_n(label: &str, n: u64) {
    if let Ok(mut t) = TALLY.lock() {
        *t.entry(label.to_owned()).or_default() += n;
    }
}

fn at(n: usize, step: &str, e: TestCaseError) -> TestCaseError {
    TestCaseError::fail(format!("after step {n} ({step}): {e}"))
}

/// A command that holds the writer until released, so the commands queued meanwhile are
/// taken together as the next batch.
struct Hold(Arc<(Mutex<bool>, Condvar)>);

impl Op for Hold {
    type Output = ();

    fn apply(&self, _cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let (open, cv) = &*self.0;
        let mut open = open.lock().expect("gate lock");
        while !*open {
            let (g, timeout) = cv
                .wait_timeout(open, Duration::from_secs(5))
                .expect("gate lock");
            open = g;
            if timeout.timed_out() {
                break;
            }
        }
        Ok(())
    }
}

impl Run<'_> {
    fn fund(&mut self) -> Result<FundState, TestCaseError> {
        FundState::load(&mut self.conn).or_fail("fund loads")
    }

    pub(super) fn donation(&mut self, id: i64) -> Result<DonationRow, TestCaseError> {
        donations::table
            .find(id)
            .select(DonationRow::as_select())
            .first(&mut self.conn)
            .or_fail("donation row")
    }

    fn step(&mut self, action: &Action) -> Result<(), TestCaseError> {
        let before = self.fund()?.row;
        let rows_before = checks::donation_rows(&mut self.conn)?;
        self.model.closed_now = false;
        let (unreserved, changes) = match action {
            Action::Stripe(i, act) => {
                self.stripe(*i, act);
                (false, false)
            }
            Action::CardRefund(i, share) => self.card_refund(*i, *share)?,
            Action::Expire(i) => self.expire(*i)?,
            Action::CancelOutstanding => self.cancel_outstanding()?,
            Action::Burst(list) => self.submit(list, true)?,
            Action::Flush(seed) => {
                use rand::SeedableRng;
                use rand::seq::SliceRandom;
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                self.model.in_flight.shuffle(&mut rng);
                let all = vec![Action::DeliverNext; self.model.in_flight.len()];
                self.submit(&all, true)?
            }
            one => self.submit(std::slice::from_ref(one), false)?,
        };
        // The effects of a batch are sent after its callers are answered: one more batch
        // makes sure they have been sent.
        self.rt
            .block_on(self.writer.submit(Refresh))
            .or_fail("refresh")?;
        let mut cancel = false;
        while let Ok(e) = self.effects.try_recv() {
            cancel |= e == Effect::CancelOutstanding;
        }
        if self.model.closed_now {
            tally("intake closed by reaching the target");
        }
        prop_assert_eq!(
            cancel,
            self.model.closed_now,
            "cancelling outstanding intents is asked exactly when intake closes"
        );
        let after = self.fund()?.row;
        if !changes {
            prop_assert_eq!(
                after.ledger_seq,
                before.ledger_seq,
                "a replay or refused command appends no ledger entry"
            );
            prop_assert_eq!(
                checks::donation_rows(&mut self.conn)?,
                rows_before,
                "a replay or refused command changes no donation"
            );
        }
        self.unreserved_ever |= unreserved;
        if self.model.strict {
            let headroom = |r: &crowdledger::db::models::FundRow| {
                r.raised_minor + r.reserved_minor <= r.target_minor
            };
            if headroom(&before) && !unreserved {
                prop_assert!(
                    headroom(&after),
                    "strict: raised {} + reserved {} passed the target {} on a card step",
                    after.raised_minor,
                    after.reserved_minor,
                    after.target_minor
                );
            }
            if !self.unreserved_ever {
                prop_assert!(
                    after.raised_minor <= after.target_minor,
                    "strict: raised {} passed the target {}",
                    after.raised_minor,
                    after.target_minor
                );
            }
        }
        checks::check(&self.model, &mut self.conn, &self.writer)
    }

    /// Submits planned commands (together, in one batch, for a burst) and compares answers.
    /// Returns (added unreserved money, may have changed something).
    fn submit(&mut self, actions: &[Action], burst: bool) -> Result<(bool, bool), TestCaseError> {
        let mut planned = Vec::new();
        let mut follow = Vec::new();
        for a in actions {
            if let Some((p, f)) = commands::plan(&mut self.model, &self.writer, a, burst) {
                planned.push(p);
                follow.extend(f);
            }
        }
        let unreserved = planned.iter().any(|p| p.unreserved_money);
        let changes = planned
            .iter()
            .chain(&follow)
            .any(|p| !p.expect.changes_nothing());
        self.run_together(planned, burst)?;
        self.run_together(follow, false)?;
        Ok((unreserved, changes))
    }

    fn run_together(&mut self, planned: Vec<Planned>, hold: bool) -> Result<(), TestCaseError> {
        if planned.is_empty() {
            return Ok(());
        }
        let mut futures: Vec<plan::Answer> = Vec::new();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        if hold {
            futures.push(plan::submit(&self.writer, Hold(Arc::clone(&gate)), |()| {
                Got::Unit
            }));
        }
        let mut expects = Vec::new();
        for p in planned {
            futures.push(p.answer);
            tally(&p.label);
            expects.push((p.what, p.expect));
        }
        let release = Arc::clone(&gate);
        futures.push(Box::pin(async move {
            let (open, cv) = &*release;
            *open.lock().expect("gate lock") = true;
            cv.notify_all();
            Ok(Got::Unit)
        }));
        let mut answers = self.rt.block_on(futures_util::future::join_all(futures));
        answers.pop();
        if hold {
            answers.remove(0).or_fail("hold")?;
        }
        for ((what, expect), got) in expects.into_iter().zip(answers) {
            self.compare(&what, &expect, got)?;
        }
        Ok(())
    }

    pub(super) fn compare(
        &mut self,
        what: &str,
        expect: &Expect,
        got: Result<Got, AppError>,
    ) -> Result<(), TestCaseError> {
        let bad = |got: &dyn std::fmt::Debug| {
            TestCaseError::fail(format!("{what}: expected {expect:?}, got {got:?}"))
        };
        match (expect, got) {
            (Expect::Err(code), Err(e)) if e.code == *code => Ok(()),
            (Expect::Event(o), Ok(Got::Event(g))) if *o == g => Ok(()),
            (
                Expect::Created(id),
                Ok(Got::Created(crowdledger::ledger::card::Created::New { donation_id })),
            ) if *id == donation_id => Ok(()),
            (
                Expect::InFlight(id),
                Ok(Got::Created(crowdledger::ledger::card::Created::InFlight { donation_id })),
            ) if *id == donation_id => Ok(()),
            (
                Expect::Replayed(body),
                Ok(Got::Created(crowdledger::ledger::card::Created::Replayed(r))),
            ) if *body == r.body => Ok(()),
            (Expect::Offline(id, key), Ok(Got::Stored(r))) => {
                let v: serde_json::Value =
                    serde_json::from_str(&r.body).or_fail("answer is JSON")?;
                if r.status != 201 || v["donation_id"] != *id {
                    return Err(bad(&r));
                }
                if let Some(k) = key {
                    self.model
                        .offline_keys
                        .entry(*k)
                        .and_modify(|e| e.1 = KeyState::Done(Some(r.body)));
                }
                Ok(())
            }
            (Expect::OfflineReplay(k), Ok(Got::Stored(r))) => {
                match self.model.offline_keys.get(k) {
                    Some((_, KeyState::Done(Some(body)))) if *body == r.body => Ok(()),
                    _ => Err(bad(&r)),
                }
            }
            (Expect::Refund(amount), Ok(Got::Refund(r)))
                if r.refunded == crowdledger::money::Money::new(*amount, USD) =>
            {
                Ok(())
            }
            (Expect::Unit, Ok(Got::Unit)) => Ok(()),
            (Expect::Period(index), Ok(Got::Period(row))) => {
                let p = &mut self.model.periods[*index];
                if p.id != 0 && p.id != row.id {
                    return Err(bad(&row));
                }
                p.id = row.id;
                Ok(())
            }
            (_, got) => Err(bad(&got)),
        }
    }
}
