//! The steps a case is made of, and how proptest generates them. Steps name donations and
//! events by `Pick` into whatever exists when they run, so every shrunk sequence still
//! runs (a step with nothing to act on does nothing).
//!
//! Swarm testing: each case weighs the kinds of step differently (some not at all), so
//! some cases are all deliveries and disputes, others all offline gifts and target changes;
//! a uniform mix rarely builds the states where rare bugs live.

use proptest::prelude::*;

/// Names one of whatever exists when the step runs (by position, modulo how many).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick(pub u16);

impl Pick {
    /// A position in `0..len` (`len` > 0).
    pub fn of(self, len: usize) -> usize {
        usize::from(self.0) % len
    }
}

impl Arbitrary for Pick {
    type Parameters = ();
    type Strategy = BoxedStrategy<Pick>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        (0u16..64).prop_map(Pick).boxed()
    }
}

/// What became of a card donation's PaymentIntent in the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Created and tied to the donation (the page got its client secret).
    Attached,
    /// Created, not tied yet (an `Attach` step may do it).
    Unattached,
    /// Stripe refused to create it: the donation is abandoned.
    Failed,
}

/// Something Stripe does to a payment (the ledger learns it from a webhook later).
#[derive(Debug, Clone)]
pub enum StripeAct {
    /// The donor's card went through.
    Succeed,
    /// An attempt failed; the intent stays usable.
    Fail,
    /// The intent was canceled (dashboard, expiry).
    Cancel,
    /// A refund made at Stripe: a share (per mille) of what is left, or all of it.
    Refund(Option<u16>),
    /// The donor's bank opened a dispute.
    DisputeOpen,
    /// The dispute ended.
    DisputeClose { won: bool },
    /// A bank debit starts (`payment_intent.processing`); it succeeds or fails later.
    Process,
    /// The charge names its method (`charge.pending`, `charge.succeeded`): the first names
    /// it from `METHODS` by this index, later ones repeat it.
    ChargeMethod(u8),
    /// A paid bank debit is returned (an ACH return): a dispute lost, sent as opened then
    /// closed, or only closed.
    AchReturn { only_closed: bool },
    /// A refund of a bank debit, Alipay or WeChat Pay payment made at Stripe: pending now
    /// (`refund.created`, and `charge.refunded` with the total including it).
    AsyncRefund(Option<u16>),
    /// A pending asynchronous refund finishes (`refund.updated`), maybe said twice (also
    /// `charge.refund.updated`).
    RefundSettles { refund: Pick, ok: bool, twice: bool },
}

/// One step of a case.
#[derive(Debug, Clone)]
pub enum Action {
    /// `POST /api/donations`: the pending donation, then the PaymentIntent (which Stripe may
    /// fail to create: the donation is abandoned).
    CreateCard {
        amount: i64,
        key: Option<u8>,
        variant: u8,
        intent: Intent,
    },
    /// The handler ties the intent to its donation.
    Attach(Pick),
    /// Stripe changes a payment; a webhook goes in flight.
    Stripe(Pick, StripeAct),
    /// Stripe delivers one of the webhooks in flight (any order).
    Deliver(Pick),
    /// Stripe delivers the oldest webhook in flight (the usual order).
    DeliverNext,
    /// Stripe delivers every webhook in flight at once, shuffled by this seed (one batch).
    Flush(u64),
    /// Stripe delivers a webhook again.
    Redeliver(Pick),
    /// `POST /api/donations/offline`, maybe with a reused `Idempotency-Key` and a changed body.
    Offline {
        amount: i64,
        key: Option<u8>,
        variant: u8,
    },
    /// An admin refunds an offline gift (`None`: all that is left).
    OfflineRefund(Pick, Option<u16>),
    /// An admin refunds a card gift through Stripe (`POST /api/admin/donations/{id}/refund`).
    CardRefund(Pick, Option<u16>),
    /// `PUT /api/admin/intake`.
    SetIntake(bool),
    /// `PUT /api/admin/fund`: a target this far from raised (at least 0.01).
    SetTarget(i64),
    /// `POST /api/admin/periods` (or `PUT` one that exists).
    Period {
        existing: Option<Pick>,
        month: u32,
        budget: i64,
    },
    /// The sweep expires one strict-mode reservation.
    Expire(Pick),
    /// The payments worker cancels every intent left open after intake closed.
    CancelOutstanding,
    /// Several steps submitted at once, so they share one writer batch.
    Burst(Vec<Action>),
}

/// A whole case: cap mode, first target, the steps.
#[derive(Debug, Clone)]
pub struct Case {
    pub strict: bool,
    pub target: i64,
    pub steps: Vec<Action>,
}

fn key() -> BoxedStrategy<Option<u8>> {
    prop_oneof![2 => Just(None), 1 => (0u8..3).prop_map(Some)].boxed()
}

/// A share (per mille) of what is left; above 1000 asks for more than is left.
fn share() -> BoxedStrategy<Option<u16>> {
    prop_oneof![1 => Just(None), 3 => (1u16..=1100).prop_map(Some)].boxed()
}

fn offline() -> BoxedStrategy<Action> {
    (key(), 0u8..2)
        .prop_flat_map(|(key, variant)| {
            gift(key, 1..=12_000).prop_map(move |amount| Action::Offline {
                amount,
                key,
                variant,
            })
        })
        .boxed()
}

/// An amount: any, or (with a key, so that a reused key sometimes repeats the request) one
/// of three.
fn gift(key: Option<u8>, any: std::ops::RangeInclusive<i64>) -> BoxedStrategy<i64> {
    match key {
        None => any.boxed(),
        Some(_) => prop_oneof![Just(1_500i64), Just(2_500), Just(4_000)].boxed(),
    }
}

fn create() -> BoxedStrategy<Action> {
    let intent = prop_oneof![
        16 => Just(Intent::Attached),
        3 => Just(Intent::Unattached),
        1 => Just(Intent::Failed),
    ];
    (key(), 0u8..2, intent)
        .prop_flat_map(|(key, variant, intent)| {
            gift(key, 100..=30_000).prop_map(move |amount| Action::CreateCard {
                amount,
                key,
                variant,
                intent,
            })
        })
        .boxed()
}

fn period() -> BoxedStrategy<Action> {
    (
        proptest::option::of(any::<Pick>()),
        0u32..12,
        1_000i64..50_000,
    )
        .prop_map(|(existing, month, budget)| Action::Period {
            existing,
            month,
            budget,
        })
        .boxed()
}

fn stripe_act() -> BoxedStrategy<StripeAct> {
    prop_oneof![
        7 => Just(StripeAct::Succeed),
        2 => Just(StripeAct::Fail),
        1 => Just(StripeAct::Cancel),
        3 => share().prop_map(StripeAct::Refund),
        3 => Just(StripeAct::DisputeOpen),
        3 => any::<bool>().prop_map(|won| StripeAct::DisputeClose { won }),
        3 => Just(StripeAct::Process),
        2 => (0u8..8).prop_map(StripeAct::ChargeMethod),
        2 => any::<bool>().prop_map(|only_closed| StripeAct::AchReturn { only_closed }),
        8 => share().prop_map(StripeAct::AsyncRefund),
        10 => (any::<Pick>(), proptest::bool::weighted(0.7), any::<bool>())
            .prop_map(|(refund, ok, twice)| StripeAct::RefundSettles { refund, ok, twice }),
    ]
    .boxed()
}

/// Which swarm kind a step is (`Burst` is its own kind, the last).
fn kind_of(a: &Action) -> usize {
    match a {
        Action::CreateCard { .. } => 0,
        Action::Attach(_) => 1,
        Action::Deliver(_) => 2,
        Action::DeliverNext => 3,
        Action::Redeliver(_) => 4,
        Action::Offline { .. } => 5,
        Action::OfflineRefund(..) => 6,
        Action::SetIntake(_) => 7,
        Action::SetTarget(_) => 8,
        Action::Period { .. } => 9,
        Action::Stripe(..) => 10,
        Action::CardRefund(..) => 11,
        Action::Expire(_) => 12,
        Action::CancelOutstanding => 13,
        Action::Flush(_) => 14,
        Action::Burst(_) => 15,
    }
}

/// How many kinds there are.
const KINDS: usize = 16;

/// Steps that are one writer command each (they may share a batch); with `all`, every step.
fn step(all: bool) -> BoxedStrategy<Action> {
    let mut options: Vec<(u32, BoxedStrategy<Action>)> = vec![
        (5, create()),
        (2, any::<Pick>().prop_map(Action::Attach).boxed()),
        (4, any::<Pick>().prop_map(Action::Deliver).boxed()),
        (5, Just(Action::DeliverNext).boxed()),
        (2, any::<Pick>().prop_map(Action::Redeliver).boxed()),
        (2, offline()),
        (
            1,
            (any::<Pick>(), share())
                .prop_map(|(i, s)| Action::OfflineRefund(i, s))
                .boxed(),
        ),
        (1, any::<bool>().prop_map(Action::SetIntake).boxed()),
        (1, (-20_000i64..40_000).prop_map(Action::SetTarget).boxed()),
        (1, period()),
    ];
    if all {
        options.extend([
            (
                20,
                (any::<Pick>(), stripe_act())
                    .prop_map(|(i, a)| Action::Stripe(i, a))
                    .boxed(),
            ),
            (
                1,
                (any::<Pick>(), share())
                    .prop_map(|(i, s)| Action::CardRefund(i, s))
                    .boxed(),
            ),
            (1, any::<Pick>().prop_map(Action::Expire).boxed()),
            (1, Just(Action::CancelOutstanding).boxed()),
            (2, any::<u64>().prop_map(Action::Flush).boxed()),
            (
                3,
                proptest::collection::vec(step(false), 2..6)
                    .prop_map(Action::Burst)
                    .boxed(),
            ),
        ]);
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

/// Keeps the steps of the kinds this case's swarm enables.
fn swarm(steps: Vec<Action>, on: &[bool]) -> Vec<Action> {
    steps
        .into_iter()
        .filter_map(|a| match a {
            Action::Burst(list) if on[kind_of(&Action::Burst(Vec::new()))] => {
                let list: Vec<Action> = list.into_iter().filter(|a| on[kind_of(a)]).collect();
                (!list.is_empty()).then_some(Action::Burst(list))
            }
            a if on[kind_of(&a)] => Some(a),
            _ => None,
        })
        .collect()
}

/// A case: soft or strict, a first target, and up to `max_steps` steps of the kinds its swarm
/// enables (cards, their intents and Stripe always).
pub fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        5_000i64..120_000,
        proptest::collection::vec(proptest::bool::weighted(0.7), KINDS),
        proptest::collection::vec(step(true), 1..max_steps),
    )
        .prop_map(|(strict, target, mut on, steps)| {
            for core in [0, 1, 10] {
                on[core] = true;
            }
            Case {
                strict,
                target,
                steps: swarm(steps, &on),
            }
        })
}
