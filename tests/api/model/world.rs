//! The model beside the ledger: Stripe's truth for each PaymentIntent, the events in flight,
//! and what the ledger must show. Money figures are derived from the *set* of facts delivered
//! so far (delivery order must not matter); only intake, which closes the moment raised reaches
//! the target, is tracked step by step.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

/// Intake as the model expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    Open,
    Paused,
    Closed,
}

impl Intake {
    pub fn as_str(self) -> &'static str {
        match self {
            Intake::Open => "open",
            Intake::Paused => "paused",
            Intake::Closed => "closed",
        }
    }
}

/// Where Stripe says a PaymentIntent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pay {
    /// Not paid yet (also after a failed attempt: the donor may try another card).
    Pending,
    Succeeded,
    Canceled,
}

/// A dispute as Stripe knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispute {
    Open,
    Won,
    Lost,
}

/// Stripe's truth about one intent.
#[derive(Debug, Clone)]
pub struct Truth {
    pub pay: Pay,
    /// Cumulative, as `charge.refunded` reports it.
    pub refunded: i64,
    pub dispute: Option<(i64, Dispute)>,
}

/// What one event or locally learnt fact says, as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MFact {
    Succeeded,
    Failed,
    Canceled,
    /// Cumulative refunded amount.
    Refunded(i64),
    DisputeOpened(i64),
    DisputeClosed(i64, bool),
}

impl MFact {
    /// Refunds and disputes wait for the payment to be recorded.
    pub fn needs_success(&self) -> bool {
        matches!(
            self,
            MFact::Refunded(_) | MFact::DisputeOpened(_) | MFact::DisputeClosed(..)
        )
    }
}

/// An event with its id, the donation it is about and, for webhooks, Stripe's JSON.
#[derive(Debug, Clone)]
pub struct MEvent {
    pub id: String,
    pub donation: i64,
    pub fact: MFact,
    /// `None` for facts the workers learn from the API (local ids).
    pub json: Option<Value>,
}

/// An idempotency key's state, as the model expects it.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// Card creation of this donation under way (status 0 in the table): a retry waits for
    /// its intent.
    InProgress(i64),
    /// Answered; `None` until the answer of this step is known.
    Done(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Card {
    pub pi: String,
    pub charge: String,
    pub truth: Truth,
    /// The intent was tied to the donation (the page got its client secret).
    pub attached: bool,
    /// Strict mode reserved the amount at creation.
    pub reserved_at_creation: bool,
    /// The `Idempotency-Key` it was created with.
    pub key: Option<u8>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Card(Card),
    Offline { refunded: i64 },
}

#[derive(Debug, Clone)]
pub struct Donation {
    pub id: i64,
    pub amount: i64,
    /// Intake was not open (card) / closed (offline) when the money was recorded.
    pub after_close: Option<bool>,
    pub kind: Kind,
}

/// What the ledger must show for one donation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub status: &'static str,
    pub refunded: i64,
    pub disputed: i64,
    pub dispute: Option<&'static str>,
    pub counted: i64,
}

#[derive(Debug, Clone)]
pub struct Period {
    /// Filled in from the database's answer.
    pub id: i64,
    pub starts_on: chrono::NaiveDate,
    pub budget: i64,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub strict: bool,
    pub target: i64,
    pub intake: Intake,
    pub next_id: i64,
    pub donations: BTreeMap<i64, Donation>,
    /// Every event id recorded by the ledger, in delivery order.
    pub delivered: Vec<MEvent>,
    /// Webhooks Stripe has not delivered yet (delivered in any order).
    pub in_flight: Vec<MEvent>,
    pub periods: Vec<Period>,
    /// Offline keys: request hash and answer.
    pub offline_keys: HashMap<u8, (String, KeyState)>,
    /// Card creation keys: request hash and state.
    pub card_keys: HashMap<u8, (String, KeyState)>,
    pub next_event: i64,
    /// Intake became closed during the current step.
    pub closed_now: bool,
}

impl Model {
    pub fn new(strict: bool, target: i64) -> Model {
        Model {
            strict,
            target,
            intake: Intake::Open,
            next_id: 1,
            donations: BTreeMap::new(),
            delivered: Vec::new(),
            in_flight: Vec::new(),
            periods: Vec::new(),
            offline_keys: HashMap::new(),
            card_keys: HashMap::new(),
            next_event: 1,
            closed_now: false,
        }
    }

    /// The ledger's view of a donation, from the facts delivered about it.
    pub fn view(&self, d: &Donation) -> View {
        match &d.kind {
            Kind::Offline { refunded } => {
                return View {
                    status: "succeeded",
                    refunded: *refunded,
                    disputed: 0,
                    dispute: None,
                    counted: d.amount - refunded,
                };
            }
            Kind::Card(_) => {}
        };
        let facts: Vec<&MFact> = self
            .delivered
            .iter()
            .filter(|e| e.donation == d.id)
            .map(|e| &e.fact)
            .collect();
        let has = |f: &MFact| facts.contains(&f);
        // Monotonic: succeeded beats canceled beats failed beats pending.
        let status = if has(&MFact::Succeeded) {
            "succeeded"
        } else if has(&MFact::Canceled) {
            "canceled"
        } else if has(&MFact::Failed) {
            "failed"
        } else {
            "pending"
        };
        if status != "succeeded" {
            return View {
                status,
                refunded: 0,
                disputed: 0,
                dispute: None,
                counted: 0,
            };
        }
        let refunded = facts
            .iter()
            .filter_map(|f| match f {
                MFact::Refunded(t) => Some(*t),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let closed = facts.iter().find_map(|f| match f {
            MFact::DisputeClosed(a, won) => Some((*a, *won)),
            _ => None,
        });
        let opened = facts.iter().find_map(|f| match f {
            MFact::DisputeOpened(a) => Some(*a),
            _ => None,
        });
        let (dispute, disputed) = match (closed, opened) {
            (Some((_, true)), _) => (Some("won"), 0),
            (Some((a, false)), _) => (Some("lost"), a),
            (None, Some(a)) => (Some("open"), a),
            (None, None) => (None, 0),
        };
        View {
            status,
            refunded,
            disputed,
            dispute,
            counted: d.amount - refunded - disputed,
        }
    }

    pub fn raised(&self) -> i64 {
        self.donations.values().map(|d| self.view(d).counted).sum()
    }

    pub fn count(&self) -> i64 {
        self.donations
            .values()
            .filter(|d| self.view(d).counted > 0)
            .count() as i64
    }

    /// Whether a donation holds a strict-mode reservation.
    pub fn reserves(&self, d: &Donation) -> bool {
        match &d.kind {
            Kind::Card(c) => {
                c.reserved_at_creation && matches!(self.view(d).status, "pending" | "failed")
            }
            Kind::Offline { .. } => false,
        }
    }

    pub fn reserved(&self) -> i64 {
        self.donations
            .values()
            .filter(|d| self.reserves(d))
            .map(|d| d.amount)
            .sum()
    }

    /// True if the ledger keeps this delivered event for later (its payment not recorded yet).
    /// An event about a donation that no longer exists (abandoned) is kept forever.
    pub fn kept(&self, e: &MEvent) -> bool {
        match self.donations.get(&e.donation) {
            None => true,
            Some(d) => e.fact.needs_success() && self.view(d).status != "succeeded",
        }
    }

    /// Re-evaluates intake after a change that may have taken raised (at its highest during
    /// the change: `peak`) to the target.
    pub fn settle(&mut self, peak: i64) {
        if self.intake != Intake::Closed && peak.max(self.raised()) >= self.target {
            self.intake = Intake::Closed;
            self.closed_now = true;
        }
    }

    /// Each period's coverage, in allocation order (start date, then id).
    pub fn coverage(&self) -> Vec<(i64, i64)> {
        let mut periods: Vec<&Period> = self.periods.iter().collect();
        periods.sort_by_key(|p| (p.starts_on, p.id));
        let mut left = self.raised();
        periods
            .into_iter()
            .map(|p| {
                let c = left.min(p.budget);
                left -= c;
                (p.id, c)
            })
            .collect()
    }

    pub fn card(&self, id: i64) -> Option<&Card> {
        match self.donations.get(&id).map(|d| &d.kind) {
            Some(Kind::Card(c)) => Some(c),
            _ => None,
        }
    }

    pub fn card_mut(&mut self, id: i64) -> Option<&mut Card> {
        match self.donations.get_mut(&id).map(|d| &mut d.kind) {
            Some(Kind::Card(c)) => Some(c),
            _ => None,
        }
    }

    pub fn is_delivered(&self, id: &str) -> bool {
        self.delivered.iter().any(|e| e.id == id)
    }

    /// A new webhook from Stripe about donation `id`, put in flight.
    pub fn emit(&mut self, id: i64, fact: MFact) {
        let n = self.next_event;
        self.next_event += 1;
        let d = &self.donations[&id];
        let Kind::Card(c) = &d.kind else { return };
        let json = stripe_json(&format!("evt_{n}"), 1_700_000_000 + n, &fact, d, c);
        self.in_flight.push(MEvent {
            id: format!("evt_{n}"),
            donation: id,
            fact,
            json: Some(json),
        });
    }
}

/// A Stripe event as Stripe sends it (only the fields crowdledger reads, plus a few it
/// ignores).
fn stripe_json(id: &str, created: i64, fact: &MFact, d: &Donation, c: &Card) -> Value {
    let intent = |status: &str| {
        json!({
            "id": c.pi, "object": "payment_intent", "amount": d.amount,
            "amount_received": if status == "succeeded" { d.amount } else { 0 },
            "currency": "usd", "status": status, "latest_charge": c.charge,
            "metadata": { "donation_id": d.id.to_string() },
        })
    };
    let dispute = |amount: i64, status: &str| {
        json!({
            "id": format!("dp_{}", d.id), "object": "dispute", "charge": c.charge,
            "payment_intent": c.pi, "amount": amount, "status": status,
        })
    };
    let (kind, object) = match fact {
        MFact::Succeeded => ("payment_intent.succeeded", intent("succeeded")),
        MFact::Failed => (
            "payment_intent.payment_failed",
            intent("requires_payment_method"),
        ),
        MFact::Canceled => ("payment_intent.canceled", intent("canceled")),
        MFact::Refunded(total) => (
            "charge.refunded",
            json!({
                "id": c.charge, "object": "charge", "payment_intent": c.pi,
                "amount": d.amount, "amount_refunded": total, "refunded": *total == d.amount,
            }),
        ),
        MFact::DisputeOpened(a) => ("charge.dispute.created", dispute(*a, "needs_response")),
        MFact::DisputeClosed(a, won) => (
            "charge.dispute.closed",
            dispute(*a, if *won { "won" } else { "lost" }),
        ),
    };
    json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "api_version": "2024-06-20", "data": { "object": object },
    })
}
