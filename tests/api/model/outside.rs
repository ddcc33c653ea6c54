//! What happens outside the ledger's commands: Stripe changing payments (their webhooks go in
//! flight), an admin refunding a card gift through Stripe, and the payments worker cancelling
//! intents and expiring reservations, each submitting what it learnt as the real code does.

use crowdledger::db::schema::donations;
use crowdledger::payments::events::{Fact, succeeded_fact};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::actions::{Pick, StripeAct};
use super::checks::OrFail;
use super::harness::{Run, tally};
use super::plan::{self, Expect, Got};
use super::world::{
    Dispute, Intake, KeyState, Kind, METHODS, MEvent, MFact, Pay, RefundState, settles_later,
};

/// How a donation is paid when nothing said so before: mostly by card, often by Alipay or
/// WeChat Pay, sometimes by bank debit (the last three's refunds settle later).
fn method_of(id: i64) -> &'static str {
    const MIX: [&str; 8] = [
        "card",
        "alipay",
        "card",
        "wechat_pay",
        "us_bank_account",
        "alipay",
        "card",
        "wechat_pay",
    ];
    MIX[usize::try_from(id).unwrap_or(0) % MIX.len()]
}

/// A Stripe act's name for the tally.
fn act_name(act: &StripeAct) -> String {
    match act {
        StripeAct::AchReturn { only_closed: true } => "ACH return (closed only)".into(),
        StripeAct::AchReturn { only_closed: false } => "ACH return (opened, closed)".into(),
        StripeAct::RefundSettles { ok, twice, .. } => format!(
            "async refund {}{}",
            if *ok { "succeeds" } else { "fails" },
            if *twice { " (said twice)" } else { "" }
        ),
        StripeAct::AsyncRefund(_) => "async refund created (pending)".into(),
        StripeAct::ChargeMethod(_) => "charge names its method".into(),
        other => {
            let name = format!("{other:?}");
            name.split(['(', ' ']).next().unwrap_or_default().to_owned()
        }
    }
}

impl Run<'_> {
    /// Something happens at Stripe; its webhook goes in flight.
    pub(super) fn stripe(&mut self, i: Pick, act: &StripeAct) {
        let m = &self.model;
        let candidates: Vec<i64> = m
            .donations
            .values()
            .filter(|d| {
                let Kind::Card(c) = &d.kind else { return false };
                let t = &c.truth;
                let unpaid = t.pay == Pay::Pending;
                let paid = t.pay == Pay::Succeeded && t.dispute.is_none() && t.refunded < d.amount;
                // Refunds of bank debits, Alipay and WeChat Pay settle later; made once the ledger
                // knows the method (the fee fetch records it seconds after the success).
                let later = settles_later(t.method);
                let known = || m.view(d).method == t.method;
                match act {
                    StripeAct::Succeed | StripeAct::Fail => {
                        c.attached && matches!(t.pay, Pay::Pending | Pay::Processing)
                    }
                    StripeAct::Process => {
                        c.attached
                            && unpaid
                            && !t.processed
                            && matches!(t.method, None | Some("us_bank_account"))
                    }
                    StripeAct::Cancel => matches!(t.pay, Pay::Pending | Pay::Refused),
                    StripeAct::Refund(_) => paid && !later,
                    StripeAct::DisputeOpen => paid,
                    StripeAct::DisputeClose { .. } => {
                        matches!(t.dispute, Some((_, Dispute::Open)))
                    }
                    StripeAct::ChargeMethod(_) => {
                        c.attached
                            && matches!(t.pay, Pay::Processing | Pay::Succeeded)
                            && (t.method.is_some() || (t.refunded == 0 && t.dispute.is_none()))
                    }
                    StripeAct::AchReturn { .. } => {
                        paid && t.refunded == 0
                            && matches!(t.method, None | Some("us_bank_account"))
                    }
                    StripeAct::AsyncRefund(_) => paid && later && known(),
                    StripeAct::RefundSettles { .. } => {
                        t.refunds.iter().any(|(_, s)| *s == RefundState::Pending)
                    }
                }
            })
            .map(|d| d.id)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let id = candidates[i.of(candidates.len())];
        let amount = self.model.donations[&id].amount;
        let Some(c) = self.model.card_mut(id) else {
            return;
        };
        let t = &mut c.truth;
        let mut also: Vec<(MFact, Option<&'static str>)> = Vec::new();
        let (fact, kind) = match act {
            StripeAct::Succeed => {
                t.pay = Pay::Succeeded;
                // The charge names its method as the intent succeeds (`charge.succeeded`).
                let method = *t.method.get_or_insert(method_of(id));
                also.push((MFact::Method(method), Some("charge.succeeded")));
                (MFact::Succeeded, None)
            }
            StripeAct::Fail => {
                t.pay = if t.pay == Pay::Processing {
                    Pay::Refused
                } else {
                    Pay::Pending
                };
                (MFact::Failed, None)
            }
            StripeAct::Process => {
                t.pay = Pay::Processing;
                t.processed = true;
                // A bank debit: its charge is pending (`charge.pending`).
                t.method = Some("us_bank_account");
                also.push((MFact::Method("us_bank_account"), Some("charge.pending")));
                (MFact::Processing, None)
            }
            StripeAct::Cancel => {
                t.pay = Pay::Canceled;
                (MFact::Canceled, None)
            }
            StripeAct::Refund(share) => {
                let left = amount - t.refunded;
                let r = share.map_or(left, |s| (left * i64::from(s) / 1000).clamp(1, left));
                t.refunded += r;
                (MFact::Refunded(t.refunded), None)
            }
            StripeAct::DisputeOpen => {
                let a = amount - t.refunded;
                t.dispute = Some((a, Dispute::Open));
                (MFact::DisputeOpened(a), None)
            }
            StripeAct::DisputeClose { won } => {
                let a = t.dispute.map_or(0, |(a, _)| a);
                t.dispute = Some((a, if *won { Dispute::Won } else { Dispute::Lost }));
                (MFact::DisputeClosed(a, *won), None)
            }
            StripeAct::ChargeMethod(n) => {
                let method = *t
                    .method
                    .get_or_insert(METHODS[usize::from(*n) % METHODS.len()]);
                let kind = if t.pay == Pay::Processing {
                    "charge.pending"
                } else {
                    "charge.succeeded"
                };
                (MFact::Method(method), Some(kind))
            }
            StripeAct::AchReturn { only_closed } => {
                t.method.get_or_insert("us_bank_account");
                let a = amount - t.refunded;
                t.dispute = Some((a, Dispute::Lost));
                if *only_closed {
                    (MFact::DisputeClosed(a, false), None)
                } else {
                    also.push((MFact::DisputeClosed(a, false), None));
                    (MFact::DisputeOpened(a), None)
                }
            }
            StripeAct::AsyncRefund(share) => {
                let left = amount - t.refunded;
                let r = share.map_or(left, |s| (left * i64::from(s) / 1000).clamp(1, left));
                t.refunded += r;
                let k = u32::try_from(t.refunds.len()).unwrap_or(u32::MAX);
                t.refunds.push((r, RefundState::Pending));
                // Stripe's cumulative total counts the pending refund: the ledger must not.
                also.push((MFact::Refunded(t.refunded), None));
                (
                    MFact::RefundUpdate(k, r, RefundState::Pending),
                    Some("refund.created"),
                )
            }
            StripeAct::RefundSettles { refund, ok, twice } => {
                let pending: Vec<usize> = (0..t.refunds.len())
                    .filter(|k| t.refunds[*k].1 == RefundState::Pending)
                    .collect();
                let k = pending[refund.of(pending.len())];
                let state = if *ok {
                    RefundState::Succeeded
                } else {
                    // The money is back with the fund at Stripe.
                    t.refunded -= t.refunds[k].0;
                    RefundState::Failed
                };
                t.refunds[k].1 = state;
                let fact = MFact::RefundUpdate(
                    u32::try_from(k).unwrap_or(u32::MAX),
                    t.refunds[k].0,
                    state,
                );
                if *twice {
                    also.push((fact.clone(), Some("charge.refund.updated")));
                }
                let kind = if *ok {
                    "refund.updated"
                } else {
                    "refund.failed"
                };
                (fact, Some(kind))
            }
        };
        // The event Stripe sends first goes in flight first.
        also.insert(0, (fact, kind));
        tally(&format!("stripe: {}", act_name(act)));
        for (fact, kind) in also {
            self.model.emit_as(id, fact, kind);
        }
    }

    /// Submits a fact learnt from the API, as the worker or an admin handler does.
    fn apply_local(&mut self, e: MEvent, fact: Fact) -> Result<(), TestCaseError> {
        let what = format!("{} on donation {}", e.id, e.donation);
        let op = plan::local(e.id.clone(), fact);
        let fact = e.fact.clone();
        let expect = plan::deliver(&mut self.model, e);
        tally(&format!("local {}", expect.label(Some(&fact))));
        let got = self.rt.block_on(self.writer.submit(op)).map(Got::Event);
        self.compare(&what, &expect, got)
    }

    /// `POST /api/admin/donations/{id}/refund` for a card gift: checked against the ledger,
    /// refunded at Stripe, then recorded under a local id (the webhook follows).
    pub(super) fn card_refund(
        &mut self,
        i: Pick,
        share: Option<u16>,
    ) -> Result<(bool, bool), TestCaseError> {
        let cards: Vec<i64> = self
            .model
            .donations
            .values()
            .filter(|d| matches!(d.kind, Kind::Card(_)))
            .map(|d| d.id)
            .collect();
        if cards.is_empty() {
            return Ok((false, false));
        }
        let id = cards[i.of(cards.len())];
        let d = self.donation(id)?;
        let refundable = d.amount_minor - d.refunded_minor - d.disputed_minor;
        let amount = share.map_or(refundable, |s| (refundable * i64::from(s) / 1000).max(1));
        if d.status != "succeeded" || amount <= 0 || amount > refundable {
            return Ok((false, false));
        }
        let Some(c) = self.model.card_mut(id) else {
            return Ok((false, false));
        };
        let t = &mut c.truth;
        // Bank-debit, Alipay and WeChat Pay refunds go through refund requests and settle later:
        // not modelled through this route.
        if t.dispute.is_some() || amount > d.amount_minor - t.refunded || settles_later(t.method) {
            // Stripe refuses: nothing recorded.
            return Ok((false, false));
        }
        t.refunded += amount;
        let truth_total = t.refunded;
        let (pi, charge) = (c.pi.clone(), c.charge.clone());
        self.model.emit(id, MFact::Refunded(truth_total));
        let total = d.refunded_minor + amount;
        let e = MEvent {
            id: format!("local:refund:{id}:{total}"),
            created: i64::MAX,
            donation: id,
            fact: MFact::Refunded(total),
            json: None,
        };
        let fact = Fact::ChargeRefunded {
            payment_intent: Some(pi),
            charge: d.charge_id.clone().unwrap_or(charge),
            amount_refunded: total,
        };
        self.apply_local(e, fact)?;
        Ok((false, true))
    }

    /// The worker cancels a donation's intent at Stripe and records what Stripe answers.
    fn cancel(&mut self, id: i64) -> Result<(), TestCaseError> {
        let Some(d) = self.model.donations.get(&id).cloned() else {
            return Ok(());
        };
        let Some(c) = self.model.card_mut(id) else {
            return Ok(());
        };
        let pi = c.pi.clone();
        let (status, fact) = match c.truth.pay {
            // Stripe cannot cancel money on its way: nothing is recorded.
            Pay::Processing => return Ok(()),
            Pay::Pending | Pay::Refused => {
                c.truth.pay = Pay::Canceled;
                self.model.emit(id, MFact::Canceled);
                ("canceled", MFact::Canceled)
            }
            Pay::Canceled => ("canceled", MFact::Canceled),
            Pay::Succeeded => ("succeeded", MFact::Succeeded),
        };
        let api_fact = if status == "canceled" {
            Fact::PaymentCanceled {
                payment_intent: pi.clone(),
                donation_id: Some(id),
            }
        } else {
            let Kind::Card(c) = &d.kind else {
                return Ok(());
            };
            let intent = serde_json::json!({
                "id": pi, "object": "payment_intent", "amount": d.amount,
                "amount_received": d.amount, "currency": "usd", "status": "succeeded",
                "latest_charge": c.charge, "metadata": { "donation_id": id.to_string() },
            });
            succeeded_fact(&intent).or_fail("intent reads as a success")?
        };
        let e = MEvent {
            id: format!("local:{status}:{pi}"),
            created: i64::MAX,
            donation: id,
            fact,
            json: None,
        };
        self.apply_local(e, api_fact)
    }

    /// The sweep: a strict-mode reservation past its time is cancelled at Stripe, or (when
    /// the intent was never tied to it) the donation is abandoned.
    pub(super) fn expire(&mut self, i: Pick) -> Result<(bool, bool), TestCaseError> {
        let held: Vec<i64> = self
            .model
            .donations
            .values()
            // A reservation holds through processing: the sweep leaves it alone.
            .filter(|d| self.model.reserves(d) && !self.model.view(d).processing)
            .map(|d| d.id)
            .collect();
        if held.is_empty() {
            return Ok((false, false));
        }
        let id = held[i.of(held.len())];
        let attached = self.model.card(id).is_some_and(|c| c.attached);
        if attached {
            self.cancel(id)?;
        } else {
            // Its key, if any, is freed with it.
            self.model.donations.remove(&id);
            self.model
                .card_keys
                .retain(|_, (_, s)| !matches!(s, KeyState::InProgress(d) if *d == id));
            let op = crowdledger::ledger::card::AbandonDonation {
                donation_id: id,
                idempotency_key: None,
            };
            let got = self.rt.block_on(self.writer.submit(op)).map(|()| Got::Unit);
            self.compare(&format!("expire {id}"), &Expect::Unit, got)?;
        }
        Ok((false, true))
    }

    /// After intake closed, the worker cancels every intent still open.
    pub(super) fn cancel_outstanding(&mut self) -> Result<(bool, bool), TestCaseError> {
        if self.model.intake != Intake::Closed {
            return Ok((false, false));
        }
        let open: Vec<i64> = donations::table
            .filter(donations::method.eq("card"))
            .filter(donations::status.eq_any(["pending", "failed"]))
            .filter(donations::payment_intent_id.is_not_null())
            // Money on its way is never canceled.
            .filter(donations::processing_since.is_null())
            .select(donations::id)
            .order(donations::id.asc())
            .load(&mut self.conn)
            .or_fail("open intents")?;
        let expected: Vec<i64> = self
            .model
            .donations
            .values()
            .filter(|d| {
                let v = self.model.view(d);
                self.model.card(d.id).is_some_and(|c| c.attached)
                    && matches!(v.status, "pending" | "failed")
                    && !v.processing
            })
            .map(|d| d.id)
            .collect();
        prop_assert_eq!(&open, &expected, "the intents left open");
        for id in open {
            self.cancel(id)?;
        }
        Ok((false, true))
    }
}
