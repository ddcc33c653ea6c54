//! Reading Stripe events leniently: only the fields crowdledger uses, tolerant of API
//! versions (ids or expanded objects, numbers or numeric strings, missing optional fields).

use serde_json::Value;

pub use crate::ledger::Fact;

/// A parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_...`.
    pub id: String,
    /// e.g. `payment_intent.succeeded`.
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    /// What it means for the ledger.
    pub fact: Fact,
}

impl Event {
    /// The writer's command for an event Stripe sent (to the webhook, or listed as not
    /// delivered): applied once per event id; a fact about a payment not known yet is kept.
    pub fn into_command(self) -> crate::ledger::card::ApplyStripeEvent {
        crate::ledger::card::ApplyStripeEvent {
            event_id: self.id,
            event_type: self.event_type,
            created: self.created,
            fact: self.fact,
            keep_unknown: true,
        }
    }
}

/// An integer that may arrive as a JSON number or a numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id that may arrive as a string or as an expanded object with an `id`.
pub fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Reads a PaymentIntent object (from an event or from the API) as a success fact.
pub fn succeeded_fact(pi: &Value) -> Option<Fact> {
    let payment_intent = text(pi, "id")?;
    let amount = pi
        .get("amount_received")
        .and_then(int)
        .filter(|a| *a > 0)
        .or_else(|| pi.get("amount").and_then(int))?;
    let charge = pi
        .get("latest_charge")
        .and_then(id_of)
        .or_else(|| pi.pointer("/charges/data/0").and_then(id_of));
    Some(Fact::PaymentSucceeded {
        payment_intent,
        amount,
        currency: text(pi, "currency").unwrap_or_default().to_lowercase(),
        charge,
        donation_id: metadata_donation(pi),
    })
}

/// The payment method type to record for a charge (its `payment_method_details`), if it
/// names one.
pub fn method_of_charge(charge: &Value) -> Option<&'static str> {
    let details = charge.get("payment_method_details")?;
    let kind = details.get("type").and_then(Value::as_str)?;
    let wallet = details.pointer("/card/wallet/type").and_then(Value::as_str);
    Some(crate::domain::payment_methods::recorded_type(kind, wallet))
}

fn metadata_donation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/donation_id").and_then(int)
}

/// Parses an event as this deployment takes it, from a webhook or from Stripe's list of
/// undelivered events: another account's or mode's event becomes [`Fact::Foreign`] (stored,
/// never applied), decided from the event alone.
pub fn classify(owner: &super::owner::Owner, v: &Value) -> Result<Event, String> {
    let mut event = parse_event(v)?;
    if let Some(reason) = owner.foreign_reason(v) {
        tracing::warn!(event_id = %event.id, %reason, "foreign Stripe event stored, not applied");
        event.fact = Fact::Foreign {
            reason,
            said: Box::new(event.fact),
        };
    }
    Ok(event)
}

/// Parses an event's JSON. Fails only when the envelope itself (id, type, object) is missing.
pub fn parse_event(v: &Value) -> Result<Event, String> {
    let id = text(v, "id").ok_or("event has no id")?;
    let event_type = text(v, "type").ok_or("event has no type")?;
    let created = v.get("created").and_then(int).unwrap_or(0);
    let obj = v
        .pointer("/data/object")
        .ok_or("event has no data.object")?;
    let missing = |what: &str| format!("{event_type} event {id}: {what} missing");
    let fact = match event_type.as_str() {
        "payment_intent.succeeded" => succeeded_fact(obj).ok_or_else(|| missing("id or amount"))?,
        "payment_intent.processing" => Fact::PaymentProcessing {
            payment_intent: text(obj, "id").ok_or_else(|| missing("id"))?,
            donation_id: metadata_donation(obj),
        },
        "payment_intent.payment_failed" => Fact::PaymentFailed {
            payment_intent: text(obj, "id").ok_or_else(|| missing("id"))?,
            donation_id: metadata_donation(obj),
        },
        "payment_intent.canceled" => Fact::PaymentCanceled {
            payment_intent: text(obj, "id").ok_or_else(|| missing("id"))?,
            donation_id: metadata_donation(obj),
        },
        "charge.refunded" => Fact::ChargeRefunded {
            payment_intent: obj.get("payment_intent").and_then(id_of),
            charge: text(obj, "id").ok_or_else(|| missing("id"))?,
            amount_refunded: obj
                .get("amount_refunded")
                .and_then(int)
                .ok_or_else(|| missing("amount_refunded"))?,
        },
        "charge.succeeded" | "charge.pending" => match method_of_charge(obj) {
            Some(method_type) => Fact::PaymentMethod {
                payment_intent: obj
                    .get("payment_intent")
                    .and_then(id_of)
                    .ok_or_else(|| missing("payment_intent"))?,
                charge: text(obj, "id").ok_or_else(|| missing("id"))?,
                method_type: method_type.to_owned(),
            },
            None => Fact::Ignored,
        },
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            Fact::RefundUpdated {
                refund: text(obj, "id").ok_or_else(|| missing("id"))?,
                payment_intent: obj.get("payment_intent").and_then(id_of),
                charge: obj.get("charge").and_then(id_of),
                amount: obj
                    .get("amount")
                    .and_then(int)
                    .ok_or_else(|| missing("amount"))?,
                status: text(obj, "status").ok_or_else(|| missing("status"))?,
                request_id: obj.pointer("/metadata/refund_request").and_then(int),
                failure_reason: text(obj, "failure_reason"),
            }
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let status = text(obj, "status").unwrap_or_default();
            // Inquiries ("warning_*") never withdraw funds.
            if status.starts_with("warning_") {
                Fact::Ignored
            } else {
                let dispute = text(obj, "id").ok_or_else(|| missing("id"))?;
                let charge = obj
                    .get("charge")
                    .and_then(id_of)
                    .ok_or_else(|| missing("charge"))?;
                let amount = obj
                    .get("amount")
                    .and_then(int)
                    .ok_or_else(|| missing("amount"))?;
                let payment_intent = obj.get("payment_intent").and_then(id_of);
                if event_type == "charge.dispute.created" {
                    Fact::DisputeOpened {
                        dispute,
                        payment_intent,
                        charge,
                        amount,
                    }
                } else {
                    Fact::DisputeClosed {
                        dispute,
                        payment_intent,
                        charge,
                        amount,
                        won: status == "won",
                    }
                }
            }
        }
        t if t.starts_with("payout.") => Fact::Payout {
            payout: text(obj, "id").ok_or_else(|| missing("id"))?,
            amount: obj
                .get("amount")
                .and_then(int)
                .ok_or_else(|| missing("amount"))?,
            currency: text(obj, "currency").unwrap_or_default().to_lowercase(),
            status: text(obj, "status").unwrap_or_default(),
            arrival_date: obj.get("arrival_date").and_then(int),
            created: obj.get("created").and_then(int).unwrap_or(created),
        },
        _ => Fact::Ignored,
    };
    Ok(Event {
        id,
        event_type,
        created,
        fact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_old_and_new_shapes() {
        // localstripe: no amount_received, latest_charge expanded, api_version 2017.
        let old = json!({"id": "evt_1", "type": "payment_intent.succeeded", "created": 5,
            "data": {"object": {"id": "pi_1", "amount": 500, "currency": "USD",
                "latest_charge": {"id": "ch_1"}, "metadata": {"donation_id": "7"}}}});
        let e = parse_event(&old).expect("parses");
        assert_eq!(
            e.fact,
            Fact::PaymentSucceeded {
                payment_intent: "pi_1".into(),
                amount: 500,
                currency: "usd".into(),
                charge: Some("ch_1".into()),
                donation_id: Some(7)
            }
        );
        // Current Stripe: amount_received, latest_charge as an id.
        let new = json!({"id": "evt_2", "type": "payment_intent.succeeded", "created": 5,
            "data": {"object": {"id": "pi_1", "amount": 600, "amount_received": 500, "currency": "usd",
                "latest_charge": "ch_1", "metadata": {}}}});
        match parse_event(&new).expect("parses").fact {
            Fact::PaymentSucceeded {
                amount,
                charge,
                donation_id,
                ..
            } => {
                assert_eq!(
                    (amount, charge.as_deref(), donation_id),
                    (500, Some("ch_1"), None)
                );
            }
            other => panic!("{other:?}"),
        }
        let unknown = json!({"id": "evt_3", "type": "customer.created", "data": {"object": {}}});
        assert_eq!(parse_event(&unknown).expect("parses").fact, Fact::Ignored);
        assert!(parse_event(&json!({"type": "x"})).is_err());
    }

    #[test]
    fn charges_name_their_method_and_refunds_their_state() {
        let ch = json!({"id": "evt_6", "type": "charge.succeeded", "data": {"object": {
            "id": "ch_1", "payment_intent": "pi_1",
            "payment_method_details": {"type": "card", "card": {"wallet": {"type": "google_pay"}}}}}});
        assert_eq!(
            parse_event(&ch).expect("parses").fact,
            Fact::PaymentMethod {
                payment_intent: "pi_1".into(),
                charge: "ch_1".into(),
                method_type: "google_pay".into()
            }
        );
        let bare =
            json!({"id": "evt_7", "type": "charge.pending", "data": {"object": {"id": "ch_1"}}});
        assert_eq!(parse_event(&bare).expect("parses").fact, Fact::Ignored);
        let re = json!({"id": "evt_8", "type": "charge.refund.updated", "data": {"object": {
            "id": "re_1", "object": "refund", "amount": 700, "charge": "ch_1", "payment_intent": "pi_1",
            "status": "failed", "failure_reason": "unknown", "metadata": {"refund_request": "4"}}}});
        assert_eq!(
            parse_event(&re).expect("parses").fact,
            Fact::RefundUpdated {
                refund: "re_1".into(),
                payment_intent: Some("pi_1".into()),
                charge: Some("ch_1".into()),
                amount: 700,
                status: "failed".into(),
                request_id: Some(4),
                failure_reason: Some("unknown".into())
            }
        );
    }

    #[test]
    fn a_foreign_fact_reads_back() {
        let f = Fact::Foreign {
            reason: "x".into(),
            said: Box::new(Fact::Ignored),
        };
        let text = serde_json::to_string(&f).expect("serialises");
        assert_eq!(serde_json::from_str::<Fact>(&text).expect("reads"), f);
    }

    #[test]
    fn disputes_and_refunds() {
        let closed = json!({"id": "evt_4", "type": "charge.dispute.closed", "created": 9,
            "data": {"object": {"id": "dp_1", "charge": "ch_1", "amount": 300, "status": "lost"}}});
        assert_eq!(
            parse_event(&closed).expect("parses").fact,
            Fact::DisputeClosed {
                dispute: "dp_1".into(),
                payment_intent: None,
                charge: "ch_1".into(),
                amount: 300,
                won: false
            }
        );
        let refund = json!({"id": "evt_5", "type": "charge.refunded",
            "data": {"object": {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": "250"}}});
        assert_eq!(
            parse_event(&refund).expect("parses").fact,
            Fact::ChargeRefunded {
                payment_intent: Some("pi_1".into()),
                charge: "ch_1".into(),
                amount_refunded: 250
            }
        );
    }
}
