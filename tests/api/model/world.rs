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
    /// A bank debit on its way (`payment_intent.processing`): it succeeds or fails later.
    Processing,
    /// The bank refused the debit after processing: the donor was told; no attempt follows
    /// (the intent may still be canceled).
    Refused,
    Succeeded,
    Canceled,
}

/// Where an asynchronous refund (bank debit, Alipay, WeChat Pay) is at Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    Pending,
    Succeeded,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }
}

/// The methods a charge may name.
pub const METHODS: [&str; 4] = ["card", "us_bank_account", "alipay", "wechat_pay"];

/// Whether a method's refunds settle later (counted one by one when each succeeds).
pub fn settles_later(method: Option<&str>) -> bool {
    matches!(method, Some("us_bank_account" | "alipay" | "wechat_pay"))
}

/// Active admins in every case's database (`store`): each gets a `refund_failed` email.
pub const ACTIVE_ADMINS: i64 = 2;

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
    /// The intent went through processing once (a bank debit); it is not processed again.
    pub processed: bool,
    /// The method its charge names, once it has one.
    pub method: Option<&'static str>,
    /// Asynchronous refunds (`re_{donation}_{index}`): amount and state. `refunded` counts
    /// those pending or succeeded, as Stripe's `amount_refunded` does.
    pub refunds: Vec<(i64, RefundState)>,
}

impl Truth {
    pub fn new() -> Truth {
        Truth {
            pay: Pay::Pending,
            refunded: 0,
            dispute: None,
            processed: false,
            method: None,
            refunds: Vec::new(),
        }
    }
}

/// What one event or locally learnt fact says, as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MFact {
    Succeeded,
    /// The money is on its way (a bank debit).
    Processing,
    Failed,
    Canceled,
    /// Cumulative refunded amount (pending asynchronous refunds included).
    Refunded(i64),
    DisputeOpened(i64),
    DisputeClosed(i64, bool),
    /// The charge names its payment method.
    Method(&'static str),
    /// An asynchronous refund (by index on its donation): amount and state.
    RefundUpdate(u32, i64, RefundState),
}

impl MFact {
    /// Refunds and disputes wait for the payment to be recorded.
    pub fn needs_success(&self) -> bool {
        matches!(
            self,
            MFact::Refunded(_)
                | MFact::DisputeOpened(_)
                | MFact::DisputeClosed(..)
                | MFact::RefundUpdate(..)
        )
    }

    /// Refund facts, which also wait for the charge to name its method.
    pub fn is_refund(&self) -> bool {
        matches!(self, MFact::Refunded(_) | MFact::RefundUpdate(..))
    }

    /// A short name for the tally.
    pub fn name(&self) -> String {
        match self {
            MFact::DisputeClosed(_, won) => format!("DisputeClosed(won={won})"),
            MFact::Method(m) => format!("Method({m})"),
            MFact::RefundUpdate(_, _, s) => format!("RefundUpdate({})", s.as_str()),
            f => {
                let name = format!("{f:?}");
                name.split('(').next().unwrap_or_default().to_owned()
            }
        }
    }
}

/// An event with its id, the donation it is about and, for webhooks, Stripe's JSON.
#[derive(Debug, Clone)]
pub struct MEvent {
    pub id: String,
    /// Stripe's `created` (kept events are applied in this order); local facts: `i64::MAX`.
    pub created: i64,
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
    /// `processing_since` is set.
    pub processing: bool,
    /// A reservation released by a failure after processing.
    pub released: bool,
    /// `payment_method_type`.
    pub method: Option<&'static str>,
    /// The `refund_requests` rows of asynchronous refunds, by Stripe id: their state.
    pub refund_rows: BTreeMap<String, &'static str>,
    /// A `payment_failed` email was queued.
    pub payment_failed_email: bool,
    /// Asynchronous refunds that failed (each emails every active admin).
    pub failed_refunds: i64,
    /// Stripe's `created` of the latest refusal recorded (a processing event at or before it
    /// belongs to the attempt it ended).
    pub refused_at: Option<i64>,
}

impl View {
    fn new(status: &'static str) -> View {
        View {
            status,
            refunded: 0,
            disputed: 0,
            dispute: None,
            counted: 0,
            processing: false,
            released: false,
            method: None,
            refund_rows: BTreeMap::new(),
            payment_failed_email: false,
            failed_refunds: 0,
            refused_at: None,
        }
    }

    /// Applies one fact as `card::facts::apply_fact` does (`d` the donation's amount, the
    /// fact's event created at `created`).
    fn apply(&mut self, amount: i64, id: i64, fact: &MFact, created: i64) {
        let open = matches!(self.status, "pending" | "failed");
        let counted = amount - self.refunded - self.disputed;
        let take = |want: i64| want.min(counted).max(0);
        match fact {
            MFact::Succeeded => self.status = "succeeded",
            MFact::Processing => {
                if !open {
                } else if self.status == "failed" && self.refused_at.is_some_and(|r| r >= created) {
                    // Refused later, delivered first: it failed after processing.
                    if !self.processing {
                        self.processing = true;
                        self.released = true;
                        self.payment_failed_email = true;
                    }
                } else if !(self.status == "pending" && self.processing) {
                    self.status = "pending";
                    self.processing = true;
                }
            }
            MFact::Failed => {
                self.refused_at = self.refused_at.max(Some(created));
                if self.status == "pending" {
                    self.status = "failed";
                    if self.processing {
                        self.released = true;
                        self.payment_failed_email = true;
                    }
                }
            }
            MFact::Canceled => {
                if open {
                    self.status = "canceled";
                }
            }
            MFact::Method(m) => self.method = Some(m),
            MFact::Refunded(_) if settles_later(self.method) => {}
            MFact::Refunded(total) => {
                let t = take(total - self.refunded);
                self.refunded += t;
            }
            MFact::RefundUpdate(..) if !settles_later(self.method) => {}
            MFact::RefundUpdate(k, a, state) => {
                let re = format!("re_{id}_{k}");
                let row = self.refund_rows.get(&re).copied();
                match state {
                    RefundState::Succeeded => {
                        if row != Some("done") {
                            self.refunded += take(*a);
                            self.refund_rows.insert(re, "done");
                        }
                    }
                    RefundState::Failed => {
                        if row != Some("failed") {
                            self.refund_rows.insert(re, "failed");
                            self.failed_refunds += 1;
                        }
                    }
                    RefundState::Pending => {
                        self.refund_rows.entry(re).or_insert("pending");
                    }
                }
            }
            MFact::DisputeOpened(a) => {
                if self.dispute.is_none() {
                    self.disputed += take(*a);
                    self.dispute = Some("open");
                }
            }
            MFact::DisputeClosed(a, won) => match (self.dispute, won) {
                (Some("open"), true) => {
                    self.disputed = 0;
                    self.dispute = Some("won");
                }
                (Some("open"), false) => self.dispute = Some("lost"),
                (None, true) => self.dispute = Some("won"),
                (None, false) => {
                    self.disputed += take(*a);
                    self.dispute = Some("lost");
                }
                _ => {}
            },
        }
    }
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
                    refunded: *refunded,
                    counted: d.amount - refunded,
                    ..View::new("succeeded")
                };
            }
            Kind::Card(_) => {}
        };
        // The facts in the order the ledger applies them: as delivered, except that refunds
        // and disputes delivered before the payment's success are kept and applied (oldest
        // first by Stripe's `created`) right after it.
        // Refunds also wait until the charge has named its method (the intents here offer
        // several methods, so none is known before), and are applied when it does.
        let mut v = View::new("pending");
        let mut kept: Vec<&MEvent> = Vec::new();
        let ready = |v: &View, f: &MFact| {
            let waits = (f.needs_success() && v.status != "succeeded")
                || (f.is_refund() && v.method.is_none());
            !waits
        };
        for e in self.delivered.iter().filter(|e| e.donation == d.id) {
            if !ready(&v, &e.fact) {
                kept.push(e);
                continue;
            }
            let first_success = e.fact == MFact::Succeeded && v.status != "succeeded";
            let first_method = matches!(e.fact, MFact::Method(_)) && v.method.is_none();
            v.apply(d.amount, d.id, &e.fact, e.created);
            if first_success || first_method {
                kept.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
                let mut still = Vec::new();
                for k in kept.drain(..) {
                    if ready(&v, &k.fact) {
                        v.apply(d.amount, d.id, &k.fact, k.created);
                    } else {
                        still.push(k);
                    }
                }
                kept = still;
            }
        }
        if v.status == "succeeded" {
            v.counted = d.amount - v.refunded - v.disputed;
        }
        v
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
                let v = self.view(d);
                c.reserved_at_creation && matches!(v.status, "pending" | "failed") && !v.released
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

    /// True if the ledger keeps this delivered event for later (its payment not recorded yet,
    /// or, for a refund, its charge not yet heard of).
    /// An event about a donation that no longer exists (abandoned) is kept forever.
    pub fn kept(&self, e: &MEvent) -> bool {
        match self.donations.get(&e.donation) {
            None => true,
            Some(d) => {
                let v = self.view(d);
                (e.fact.needs_success() && v.status != "succeeded")
                    || (e.fact.is_refund() && v.method.is_none())
            }
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
        self.emit_as(id, fact, None);
    }

    /// A new webhook of this type (else the fact's usual one), put in flight.
    pub fn emit_as(&mut self, id: i64, fact: MFact, kind: Option<&'static str>) {
        let n = self.next_event;
        self.next_event += 1;
        let d = &self.donations[&id];
        let Kind::Card(c) = &d.kind else { return };
        let created = 1_700_000_000 + n;
        let json = stripe_json(&format!("evt_{n}"), created, &fact, kind, d, c);
        self.in_flight.push(MEvent {
            id: format!("evt_{n}"),
            created,
            donation: id,
            fact,
            json: Some(json),
        });
    }
}

/// A Stripe event as Stripe sends it (only the fields crowdledger reads, plus a few it
/// ignores).
fn stripe_json(
    id: &str,
    created: i64,
    fact: &MFact,
    kind: Option<&'static str>,
    d: &Donation,
    c: &Card,
) -> Value {
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
    let (default, object) = match fact {
        MFact::Succeeded => ("payment_intent.succeeded", intent("succeeded")),
        MFact::Processing => ("payment_intent.processing", intent("processing")),
        MFact::Method(m) => {
            let details = match *m {
                "card" => json!({ "type": "card", "card": { "brand": "visa", "wallet": null } }),
                other => json!({ "type": other }),
            };
            let pending = kind == Some("charge.pending");
            (
                "charge.succeeded",
                json!({
                    "id": c.charge, "object": "charge", "payment_intent": c.pi,
                    "amount": d.amount, "currency": "usd",
                    "status": if pending { "pending" } else { "succeeded" },
                    "payment_method_details": details,
                }),
            )
        }
        MFact::RefundUpdate(k, a, state) => (
            "refund.updated",
            json!({
                "id": format!("re_{}_{k}", d.id), "object": "refund", "amount": a,
                "charge": c.charge, "payment_intent": c.pi, "currency": "usd",
                "status": state.as_str(), "metadata": {},
                "failure_reason": if *state == RefundState::Failed {
                    Value::from("unknown")
                } else {
                    Value::Null
                },
            }),
        ),
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
    let kind = kind.unwrap_or(default);
    json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "api_version": "2024-06-20", "data": { "object": object },
    })
}
