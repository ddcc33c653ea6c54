//! The steps that are one writer command each: for each, what the model expects the command
//! to answer, the model's update, and the command as the HTTP handler builds it.

use chrono::{Days, Months, NaiveDate};
use crowdledger::error::ErrorCode;
use crowdledger::ledger::LedgerWriter;
use crowdledger::ledger::card::EventOutcome;
use crowdledger::ledger::card::{AbandonDonation, CardGift, CreateCardDonation};
use crowdledger::ledger::ops::{
    Idempotency, OfflineGift, OfflineMethod, PeriodInput, RecordOffline, SavePeriod, SetIntake,
    UpdateFund,
};
use crowdledger::ledger::refund::RecordRefund;

use super::actions::{Action, Intent};
use super::plan::{
    Expect, Got, Planned, amount, attach, deliver, donor, fingerprint, submit, webhook,
};
use super::world::{Card, Donation, Intake, KeyState, Kind, MEvent, MFact, Model, Period, Truth};

/// Plans one writer command; `None` when the step has nothing to act on.
pub fn plan(
    model: &mut Model,
    w: &LedgerWriter,
    action: &Action,
    in_burst: bool,
) -> Option<(Planned, Option<Planned>)> {
    let what = format!("{action:?}");
    let planned = |answer, expect: Expect, unreserved_money| Planned {
        label: expect.label(None),
        answer,
        expect,
        what: what.clone(),
        unreserved_money,
    };
    match action {
        Action::Deliver(_) | Action::DeliverNext => {
            if model.in_flight.is_empty() {
                return None;
            }
            let at = match action {
                Action::Deliver(i) => i.of(model.in_flight.len()),
                _ => 0,
            };
            let e = model.in_flight.remove(at);
            let won = matches!(e.fact, MFact::DisputeClosed(_, true));
            let op = webhook(&e);
            let fact = e.fact.clone();
            // A failure after processing (a refused bank debit) is its own case.
            let late = fact == MFact::Failed
                && model
                    .donations
                    .get(&e.donation)
                    .is_some_and(|d| model.view(d).processing);
            let expect = deliver(model, e);
            let mut p = planned(submit(w, op, Got::Event), expect, won);
            p.label = p.expect.label(Some(&fact));
            if late {
                p.label = format!("{} after processing", p.label);
            }
            Some((p, None))
        }
        Action::Redeliver(i) => {
            let again: Vec<&MEvent> = model
                .delivered
                .iter()
                .filter(|e| e.json.is_some())
                .collect();
            if again.is_empty() {
                return None;
            }
            let op = webhook(again[i.of(again.len())]);
            let expect = Expect::Event(EventOutcome::Duplicate);
            Some((planned(submit(w, op, Got::Event), expect, false), None))
        }
        Action::Offline {
            amount: minor,
            key,
            variant,
        } => {
            let gift = OfflineGift {
                amount: amount(*minor),
                amount_minor: *minor,
                donor_name: donor(*variant),
                email: Some("donor@example.org".into()),
                method: OfflineMethod::Check,
                reference: Some("1001".into()),
                received_on: NaiveDate::from_ymd_opt(2020, 8, 3).expect("date"),
                anonymous: false,
                locale: "en".into(),
            };
            let hash = fingerprint(&gift);
            let expect = match key.and_then(|k| model.offline_keys.get(&k).map(|v| (k, v))) {
                Some((k, (h, _))) if *h == hash => Expect::OfflineReplay(k),
                Some(_) => Expect::Err(ErrorCode::IdempotencyConflict),
                None => {
                    let id = model.next_id;
                    model.next_id += 1;
                    let after_close = model.intake == Intake::Closed;
                    model.donations.insert(
                        id,
                        Donation {
                            id,
                            amount: *minor,
                            after_close: Some(after_close),
                            kind: Kind::Offline { refunded: 0 },
                        },
                    );
                    if let Some(k) = key {
                        model
                            .offline_keys
                            .insert(*k, (hash.clone(), KeyState::Done(None)));
                    }
                    model.settle(model.raised());
                    Expect::Offline(id, *key)
                }
            };
            let op = RecordOffline {
                gift,
                actor: "treasurer@example.org".into(),
                idempotency: key.map(|k| Idempotency {
                    scope_key: format!("offline:{k}"),
                    request_hash: hash,
                }),
            };
            // Money that has arrived is recorded whatever the cap: no reservation covers it.
            let arrives = matches!(expect, Expect::Offline(..));
            Some((planned(submit(w, op, Got::Stored), expect, arrives), None))
        }
        Action::CreateCard {
            amount: minor,
            key,
            variant,
            intent,
        } => {
            // In a burst the handler has not heard from Stripe yet.
            let intent = if in_burst {
                Intent::Unattached
            } else {
                *intent
            };
            let gift = CardGift {
                amount: amount(*minor),
                amount_minor: *minor,
                donor_name: donor(*variant),
                email: "donor@example.org".into(),
                anonymous: false,
                locale: "en".into(),
                fee_covered_minor: 0,
            };
            let hash = fingerprint(&gift);
            let scope = key.map(|k| format!("donation:{k}"));
            let remaining = (model.target - model.raised() - model.reserved()).max(0);
            let mut follow = None;
            let expect = match key.and_then(|k| model.card_keys.get(&k)) {
                Some((h, _)) if *h != hash => Expect::Err(ErrorCode::IdempotencyConflict),
                Some((_, KeyState::InProgress(id))) => Expect::InFlight(*id),
                Some((_, KeyState::Done(body))) => {
                    Expect::Replayed(body.clone().unwrap_or_default())
                }
                None if model.intake != Intake::Open => Expect::Err(ErrorCode::IntakeClosed),
                None if model.strict && *minor > remaining => {
                    Expect::Err(ErrorCode::ExceedsRemaining)
                }
                None => {
                    let id = model.next_id;
                    model.next_id += 1;
                    if intent == Intent::Failed {
                        // Stripe refused the intent: the handler abandons the donation.
                        let op = AbandonDonation {
                            donation_id: id,
                            idempotency_key: scope.clone(),
                        };
                        follow = Some(Planned {
                            answer: submit(w, op, |()| Got::Unit),
                            expect: Expect::Unit,
                            what: format!("abandon {id}"),
                            label: "abandoned (no intent)".into(),
                            unreserved_money: false,
                        });
                    } else {
                        model.donations.insert(
                            id,
                            Donation {
                                id,
                                amount: *minor,
                                after_close: None,
                                kind: Kind::Card(Card {
                                    pi: format!("pi_{id}"),
                                    charge: format!("ch_{id}"),
                                    truth: Truth::new(),
                                    attached: false,
                                    reserved_at_creation: model.strict,
                                    key: *key,
                                }),
                            },
                        );
                        if let Some(k) = key {
                            model
                                .card_keys
                                .insert(*k, (hash.clone(), KeyState::InProgress(id)));
                        }
                        if intent == Intent::Attached {
                            follow = attach(model, w, id);
                        }
                    }
                    Expect::Created(id)
                }
            };
            let op = CreateCardDonation {
                gift,
                idempotency: scope.map(|scope_key| Idempotency {
                    scope_key,
                    request_hash: hash,
                }),
                reservation_ttl: chrono::Duration::minutes(30),
            };
            Some((planned(submit(w, op, Got::Created), expect, false), follow))
        }
        Action::Attach(i) => {
            let open: Vec<i64> = model
                .donations
                .values()
                .filter(|d| matches!(&d.kind, Kind::Card(c) if !c.attached))
                .map(|d| d.id)
                .collect();
            if open.is_empty() {
                return None;
            }
            attach(model, w, open[i.of(open.len())]).map(|p| (p, None))
        }
        Action::OfflineRefund(i, share) => {
            let offline: Vec<(i64, i64)> = model
                .donations
                .values()
                .filter_map(|d| match d.kind {
                    Kind::Offline { refunded } => Some((d.id, d.amount - refunded)),
                    Kind::Card(_) => None,
                })
                .collect();
            if offline.is_empty() {
                return None;
            }
            let (id, refundable) = offline[i.of(offline.len())];
            let asked = share.map(|s| (refundable * i64::from(s) / 1000).max(1));
            let amount = asked.unwrap_or(refundable);
            let expect = if amount <= 0 || amount > refundable {
                Expect::Err(ErrorCode::RefundExceedsRemaining)
            } else {
                if let Some(Kind::Offline { refunded }) =
                    model.donations.get_mut(&id).map(|d| &mut d.kind)
                {
                    *refunded += amount;
                }
                Expect::Refund(amount)
            };
            let op = RecordRefund {
                donation_id: id,
                amount_minor: asked,
                reason: "returned to the donor".into(),
                actor: "admin@example.org".into(),
            };
            Some((planned(submit(w, op, Got::Refund), expect, false), None))
        }
        Action::SetIntake(accepting) => {
            let expect = if *accepting && model.raised() >= model.target {
                Expect::Err(ErrorCode::TargetReached)
            } else {
                model.intake = match (accepting, model.intake) {
                    (true, _) => Intake::Open,
                    (false, Intake::Closed) => Intake::Closed,
                    (false, _) => Intake::Paused,
                };
                Expect::Unit
            };
            let op = SetIntake {
                accepting: *accepting,
                message: if *accepting { "" } else { "back soon" }.into(),
                actor: "admin@example.org".into(),
            };
            Some((planned(submit(w, op, |()| Got::Unit), expect, false), None))
        }
        Action::SetTarget(delta) => {
            let target = (model.raised() + delta).max(1);
            let op = UpdateFund {
                name: None,
                target_minor: Some(target),
                actor: "admin@example.org".into(),
            };
            // Strict mode refuses a target that the payments under way could pass.
            let reserved = model.reserved();
            // A target below what is already raised is the admin's to set (it closes intake):
            // no cap can hold raised under it.
            let below_raised = target < model.raised();
            let expect = if model.strict
                && reserved > 0
                && target != model.target
                && target < model.raised() + reserved
            {
                Expect::Err(ErrorCode::TargetBelowReserved)
            } else {
                model.target = target;
                model.settle(model.raised());
                Expect::Unit
            };
            let unreserved = below_raised && matches!(expect, Expect::Unit);
            Some((
                planned(submit(w, op, |()| Got::Unit), expect, unreserved),
                None,
            ))
        }
        Action::Period {
            existing,
            month,
            budget,
        } => {
            let starts_on = NaiveDate::from_ymd_opt(2020, 1, 1)
                .and_then(|d| d.checked_add_months(Months::new(*month)))
                .expect("date");
            // Only a period whose id is known (answered in an earlier step) can be changed.
            let known: Vec<usize> = (0..model.periods.len())
                .filter(|i| model.periods[*i].id != 0)
                .collect();
            let (index, id) = match existing {
                Some(i) if !known.is_empty() => {
                    let index = known[i.of(known.len())];
                    let p = &mut model.periods[index];
                    p.starts_on = starts_on;
                    p.budget = *budget;
                    (index, Some(p.id))
                }
                _ => {
                    model.periods.push(Period {
                        id: 0,
                        starts_on,
                        budget: *budget,
                    });
                    (model.periods.len() - 1, None)
                }
            };
            let op = SavePeriod {
                id,
                period: PeriodInput {
                    label: format!("Period {index}"),
                    starts_on,
                    ends_on: starts_on + Days::new(27),
                    budget_minor: *budget,
                },
                actor: "admin@example.org".into(),
            };
            let expect = Expect::Period(index);
            Some((planned(submit(w, op, Got::Period), expect, false), None))
        }
        _ => None,
    }
}
