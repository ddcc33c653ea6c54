//! Whose Stripe events are this deployment's: told from the event alone, before the writer.

use serde_json::Value;

/// Whose events this deployment takes: the mode of its secret key and, when configured, its
/// Stripe account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// `Some(true)` for a live key (`sk_live_`, `rk_live_`), `Some(false)` for a test key,
    /// `None` when the key says neither (then the mode is not checked).
    pub livemode: Option<bool>,
    /// `acct_...` (`STRIPE_ACCOUNT_ID`), if configured.
    pub account: Option<String>,
}

impl Owner {
    /// The owner a secret key and an optional account id describe.
    pub fn new(secret_key: &str, account: Option<&str>) -> Owner {
        let livemode = if secret_key.starts_with("sk_live_") || secret_key.starts_with("rk_live_") {
            Some(true)
        } else if secret_key.starts_with("sk_test_") || secret_key.starts_with("rk_test_") {
            Some(false)
        } else {
            None
        };
        Owner {
            livemode,
            account: account.map(str::to_owned),
        }
    }

    /// Why an event is not this deployment's, or `None` if it is. Read from the event alone
    /// (no database), so a foreign event costs the writer no more than a repeated one.
    ///
    /// An event names a connected account in `account` (Stripe Connect); the account's own
    /// events carry none. So an event with an `account` other than the configured one (or
    /// with any `account` when none is configured) is another account's. Its mode is the
    /// envelope's `livemode`, and the object's, when present.
    pub fn foreign_reason(&self, event: &Value) -> Option<String> {
        if let Some(account) = event.get("account").and_then(Value::as_str)
            && self.account.as_deref() != Some(account)
        {
            return Some(format!("event of another Stripe account ({account})"));
        }
        let want = self.livemode?;
        for at in ["/livemode", "/data/object/livemode"] {
            if let Some(live) = event.pointer(at).and_then(Value::as_bool)
                && live != want
            {
                let (got, key) = if live {
                    ("live", "test")
                } else {
                    ("test", "live")
                };
                return Some(format!(
                    "{got}-mode event, but this deployment uses a {key}-mode key"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn foreign_events_are_told_from_the_event_alone() {
        let ev = |extra: Value| {
            let mut e = json!({"id": "evt_1", "type": "payment_intent.succeeded", "livemode": false,
                "data": {"object": {"id": "pi_1", "livemode": false}}});
            if let (Some(o), Value::Object(x)) = (e.as_object_mut(), extra) {
                o.extend(x);
            }
            e
        };
        let test = Owner::new("sk_test_abc", None);
        assert_eq!(test.livemode, Some(false));
        assert_eq!(test.foreign_reason(&ev(json!({}))), None);
        assert!(
            test.foreign_reason(&ev(json!({"livemode": true})))
                .is_some_and(|r| r.starts_with("live-mode"))
        );
        let object_live = ev(json!({"data": {"object": {"id": "pi_1", "livemode": true}}}));
        assert!(test.foreign_reason(&object_live).is_some());
        assert!(
            test.foreign_reason(&ev(json!({"account": "acct_9"})))
                .is_some_and(|r| r.contains("acct_9"))
        );
        let ours = Owner::new("rk_live_abc", Some("acct_9"));
        assert_eq!(ours.livemode, Some(true));
        let live = json!({"livemode": true, "account": "acct_9", "data": {"object": {}}});
        assert_eq!(ours.foreign_reason(&live), None);
        assert!(ours.foreign_reason(&json!({"livemode": false})).is_some());
        // A key of neither shape (a fake) does not check the mode.
        assert_eq!(
            Owner::new("key", None).foreign_reason(&json!({"livemode": true})),
            None
        );
    }
}
