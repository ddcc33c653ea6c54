//! What planning a writer command gives (the command's future, the answer the model expects),
//! and the pieces the steps share: delivering a fact to the model, the webhook and local-fact
//! commands, tying an intent, the idempotency fingerprint.

use std::future::Future;
use std::pin::Pin;

use crowdledger::db::models::PeriodRow;
use crowdledger::error::{AppError, ErrorCode};
use crowdledger::ledger::card::{ApplyStripeEvent, AttachIntent, Created, EventOutcome};
use crowdledger::ledger::ops::StoredResponse;
use crowdledger::ledger::refund::RefundOutcome;
use crowdledger::ledger::{LedgerWriter, Op};
use crowdledger::money::{AmountBounds, Currency, DonationAmount};
use crowdledger::payments::events::{Fact, parse_event};
use sha2::{Digest, Sha256};

use super::world::{Card, Donation, Intake, KeyState, Kind, MEvent, MFact, Model};

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
    /// A card creation's key whose donation still waits for its intent.
    InFlight(i64),
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
            Expect::InFlight(_) => "card key in flight".into(),
            Expect::Offline(..) => "offline gift recorded".into(),
            Expect::OfflineReplay(_) => "offline key replayed".into(),
            Expect::Refund(_) => "offline refund".into(),
            Expect::Period(_) => "period saved".into(),
            Expect::Unit => "done".into(),
            Expect::Err(code) => format!("refused {code:?}"),
        };
        match fact {
            Some(f) => format!("{} {what}", f.name()),
            None => what,
        }
    }

    /// True if the answer means nothing was recorded.
    pub fn changes_nothing(&self) -> bool {
        matches!(
            self,
            Expect::Event(EventOutcome::Duplicate)
                | Expect::Replayed(_)
                | Expect::InFlight(_)
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

pub fn amount(minor: i64) -> DonationAmount {
    DonationAmount::parse(&USD.format(minor), USD, ANY).expect("model amounts are valid")
}

/// The fingerprint the handlers give a request for its idempotency key.
pub fn fingerprint<T: serde::Serialize>(request: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(request).expect("request serialises"),
    ))
}

pub fn donor(variant: u8) -> String {
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
    let view = model.view(d);
    let status = view.status;
    let (id, amount) = (d.id, d.amount);
    // Refunds also wait for the charge to name its method.
    let kept = (e.fact.needs_success() && status != "succeeded")
        || (e.fact.is_refund() && view.method.is_none());
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

/// `AttachIntent` as the handler submits it once Stripe created the intent: ties the intent
/// and remembers the answer for the idempotency key.
pub fn attach(model: &mut Model, w: &LedgerWriter, id: i64) -> Option<Planned> {
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
        // Intents offering several methods: the charge names it later.
        method_type: None,
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
