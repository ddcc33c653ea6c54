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
use super::world::{Dispute, Intake, KeyState, Kind, MEvent, MFact, Pay};

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
                match act {
                    StripeAct::Succeed | StripeAct::Fail => c.attached && unpaid,
                    StripeAct::Cancel => unpaid,
                    StripeAct::Refund(_) | StripeAct::DisputeOpen => paid,
                    StripeAct::DisputeClose { .. } => {
                        matches!(t.dispute, Some((_, Dispute::Open)))
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
        let fact = match act {
            StripeAct::Succeed => {
                t.pay = Pay::Succeeded;
                MFact::Succeeded
            }
            StripeAct::Fail => MFact::Failed,
            StripeAct::Cancel => {
                t.pay = Pay::Canceled;
                MFact::Canceled
            }
            StripeAct::Refund(share) => {
                let left = amount - t.refunded;
                let r = share.map_or(left, |s| (left * i64::from(s) / 1000).clamp(1, left));
                t.refunded += r;
                MFact::Refunded(t.refunded)
            }
            StripeAct::DisputeOpen => {
                let a = amount - t.refunded;
                t.dispute = Some((a, Dispute::Open));
                MFact::DisputeOpened(a)
            }
            StripeAct::DisputeClose { won } => {
                let a = t.dispute.map_or(0, |(a, _)| a);
                t.dispute = Some((a, if *won { Dispute::Won } else { Dispute::Lost }));
                MFact::DisputeClosed(a, *won)
            }
        };
        self.model.emit(id, fact);
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
        if t.dispute.is_some() || amount > d.amount_minor - t.refunded {
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
            Pay::Pending => {
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
            .filter(|d| self.model.reserves(d))
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
            .select(donations::id)
            .order(donations::id.asc())
            .load(&mut self.conn)
            .or_fail("open intents")?;
        let expected: Vec<i64> = self
            .model
            .donations
            .values()
            .filter(|d| {
                self.model.card(d.id).is_some_and(|c| c.attached)
                    && matches!(self.model.view(d).status, "pending" | "failed")
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
