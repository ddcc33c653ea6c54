//! One writer command per step (or per member of a burst): what the model expects it to
//! answer, the model's update, and the command itself, built as the HTTP handlers build it.

use std::future::Future;
use std::pin::Pin;

use chrono::{Days, Months, NaiveDate};
use crowdledger::db::models::PeriodRow;
use crowdledger::error::{AppError, ErrorCode};
use crowdledger::ledger::card::{
    AbandonDonation, ApplyStripeEvent, AttachIntent, CardGift, CreateCardDonation, Created,
    EventOutcome,
};
use crowdledger::ledger::ops::{
    Idempotency, OfflineGift, OfflineMethod, PeriodInput, RecordOffline, SavePeriod, SetIntake,
    StoredResponse, UpdateFund,
};
use crowdledger::ledger::refund::{RecordRefund, RefundOutcome};
use crowdledger::ledger::{LedgerWriter, Op};
use crowdledger::money::{AmountBounds, Currency, DonationAmount};
use crowdledger::payments::events::{Fact, parse_event};
use sha2::{Digest, Sha256};

use super::actions::{Action, Intent};
use super::world::{Card, Donation, Intake, KeyState, Kind, MEvent, MFact, Model, Period, Truth};

/// A command's answer, whatever its type.
#[derive(Debug)]
pub enum Got {
    Event(EventOutcome),
    Created(Created),
    Stored(StoredResponse),
    Refund(RefundOutcome),
    Period(PeriodRow),
    Unit,
}

/// What the model says the answer must be.
#[derive(Debug, Clone)]
pub enum Expect {
    Event(EventOutcome),
    /// A new card donation with this id.
    Created(i64),
    /// The stored answer to a card creation's key.
    Replayed(String),
    /// A new offline gift with this id (its answer is remembered for `key`).
    Offline(i64, Option<u8>),
    /// The answer first given for this offline key.
    OfflineReplay(u8),
    /// A refund of this much.
    Refund(i64),
    /// The period at this index of `Model::periods`.
    Period(usize),
    Unit,
    Err(ErrorCode),
}

impl Expect {
    /// A short name of the outcome (and of the fact, for events).
    pub fn label(&self, fact: Option<&MFact>) -> String {
        let what = match self {
            Expect::Event(o) => format!("{o:?}").to_lowercase(),
            Expect::Created(_) => "card donation created".into(),
            Expect::Replayed(_) => "card key replayed".into(),
            Expect::Offline(..) => "offline gift recorded".into(),
            Expect::OfflineReplay(_) => "offline key replayed".into(),
            Expect::Refund(_) => "offline refund".into(),
            Expect::Period(_) => "period saved".into(),
            Expect::Unit => "done".into(),
            Expect::Err(code) => format!("refused {code:?}"),
        };
        match fact {
            Some(f) => {
                let name = format!("{f:?}");
                let name = name.split('(').next().unwrap_or_default().to_owned();
                match f {
                    MFact::DisputeClosed(_, won) => format!("{name}(won={won}) {what}"),
                    _ => format!("{name} {what}"),
                }
            }
            None => what,
        }
    }

    /// True if the answer means nothing was recorded.
    pub fn changes_nothing(&self) -> bool {
        matches!(
            self,
            Expect::Event(EventOutcome::Duplicate)
                | Expect::Replayed(_)
                | Expect::OfflineReplay(_)
                | Expect::Err(_)
        )
    }
}

pub type Answer = Pin<Box<dyn Future<Output = Result<Got, AppError>>>>;

/// A planned command.
pub struct Planned {
    pub answer: Answer,
    pub expect: Expect,
    /// What the step was, for failure messages.
    pub what: String,
    /// What kind of thing happened, for the tally of what the cases exercised.
    pub label: String,
    /// The step may add money that no reservation covered (strict mode's exemptions).
    pub unreserved_money: bool,
}

/// Submits `op` when first polled.
pub fn submit<O, F>(w: &LedgerWriter, op: O, f: F) -> Answer
where
    O: Op,
    F: FnOnce(O::Output) -> Got + 'static,
{
    let w = w.clone();
    Box::pin(async move { w.submit(op).await.map(f) })
}

pub const USD: Currency = Currency::USD;
const ANY: AmountBounds = AmountBounds {
    min_minor: 1,
    max_minor: i64::MAX / 4,
};

fn amount(minor: i64) -> DonationAmount {
    DonationAmount::parse(&USD.format(minor), USD, ANY).expect("model amounts are valid")
}

/// The fingerprint the handlers give a request for its idempotency key.
fn fingerprint<T: serde::Serialize>(request: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(request).expect("request serialises"),
    ))
}

fn donor(variant: u8) -> String {
    ["Ann Lee", "=HYPERLINK(\"x\")"][usize::from(variant % 2)].to_owned()
}

/// The body `POST /api/donations` answers (and remembers for the key).
pub fn creation_body(d: &Donation, c: &Card) -> String {
    serde_json::json!({
        "donation_id": d.id,
        "client_secret": format!("{}_secret", c.pi),
        "amount": USD.format(d.amount),
    })
    .to_string()
}

/// Applies a delivered fact to the model: records it, and re-evaluates intake.
pub fn deliver(model: &mut Model, e: MEvent) -> Expect {
    if model.is_delivered(&e.id) {
        return Expect::Event(EventOutcome::Duplicate);
    }
    let Some(d) = model.donations.get(&e.donation) else {
        model.delivered.push(e);
        return Expect::Event(EventOutcome::Kept);
    };
    let status = model.view(d).status;
    let (id, amount) = (d.id, d.amount);
    let kept = e.fact.needs_success() && status != "succeeded";
    let succeeds = e.fact == MFact::Succeeded && status != "succeeded";
    let raised = model.raised();
    if succeeds {
        let open = model.intake == Intake::Open;
        if let Some(d) = model.donations.get_mut(&id) {
            d.after_close = Some(!open);
        }
    }
    model.delivered.push(e);
    model.settle(if succeeds { raised + amount } else { raised });
    Expect::Event(if kept {
        EventOutcome::Kept
    } else {
        EventOutcome::Applied
    })
}

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
            let expect = deliver(model, e);
            let mut p = planned(submit(w, op, Got::Event), expect, won);
            p.label = p.expect.label(Some(&fact));
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
            Some((planned(submit(w, op, Got::Stored), expect, true), None))
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
            };
            let hash = fingerprint(&gift);
            let scope = key.map(|k| format!("donation:{k}"));
            let remaining = (model.target - model.raised() - model.reserved()).max(0);
            let mut follow = None;
            let expect = match key.and_then(|k| model.card_keys.get(&k)) {
                Some((h, _)) if *h != hash => Expect::Err(ErrorCode::IdempotencyConflict),
                Some((_, KeyState::InProgress)) => Expect::Err(ErrorCode::IdempotencyConflict),
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
                                    truth: Truth {
                                        pay: super::world::Pay::Pending,
                                        refunded: 0,
                                        dispute: None,
                                    },
                                    attached: false,
                                    reserved_at_creation: model.strict,
                                    key: *key,
                                }),
                            },
                        );
                        if let Some(k) = key {
                            model
                                .card_keys
                                .insert(*k, (hash.clone(), KeyState::InProgress));
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
            model.target = target;
            model.settle(model.raised());
            let op = UpdateFund {
                name: None,
                target_minor: Some(target),
                actor: "admin@example.org".into(),
            };
            Some((
                planned(submit(w, op, |()| Got::Unit), Expect::Unit, true),
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

/// `AttachIntent` as the handler submits it once Stripe created the intent: ties the intent
/// and remembers the answer for the idempotency key.
fn attach(model: &mut Model, w: &LedgerWriter, id: i64) -> Option<Planned> {
    let d = model.donations.get(&id)?.clone();
    let Kind::Card(c) = &d.kind else { return None };
    let body = creation_body(&d, c);
    let remember = c.key.map(|k| {
        (
            format!("donation:{k}"),
            StoredResponse {
                status: 201,
                body: body.clone(),
            },
        )
    });
    if let Some(k) = c.key {
        model
            .card_keys
            .entry(k)
            .and_modify(|v| v.1 = KeyState::Done(Some(body)));
    }
    let op = AttachIntent {
        donation_id: id,
        payment_intent: c.pi.clone(),
        remember,
    };
    if let Some(c) = model.card_mut(id) {
        c.attached = true;
    }
    Some(Planned {
        answer: submit(w, op, |()| Got::Unit),
        expect: Expect::Unit,
        what: format!("attach the intent of {id}"),
        label: "intent attached".into(),
        unreserved_money: false,
    })
}

/// The command the webhook handler submits for a Stripe event: the JSON parsed by
/// `parse_event`, kept when its payment is unknown.
pub fn webhook(e: &MEvent) -> ApplyStripeEvent {
    let json = e.json.as_ref().expect("a webhook has its JSON");
    let event = parse_event(json).expect("model events parse");
    ApplyStripeEvent {
        event_id: event.id,
        event_type: event.event_type,
        created: event.created,
        fact: event.fact,
        keep_unknown: true,
    }
}

/// A fact the payments worker or an admin learnt from the API, under its local id.
pub fn local(event_id: String, fact: Fact) -> ApplyStripeEvent {
    ApplyStripeEvent {
        event_type: format!("local.{}", event_id.split(':').nth(1).unwrap_or("fact")),
        event_id,
        created: chrono::Utc::now().timestamp(),
        fact,
        keep_unknown: false,
    }
}
