//! The ways a donor can pay through Stripe, and what each one's rules are: which the
//! association may enable (`PAYMENT_METHODS`), which currencies each takes, which refund
//! asynchronously and until when. Facts from Stripe's integration guides for each method
//! (Alipay, WeChat Pay, ACH Direct Debit), read 2026-12.

/// What `PAYMENT_METHODS` may name, in the order the donor page offers them.
pub const ENABLEABLE: [&str; 4] = ["card", "us_bank_account", "alipay", "wechat_pay"];

/// The payment method types a donation can be recorded with: the enableable ones, Link
/// (offered with cards) and the card wallets Stripe names on a charge.
pub const RECORDED: [&str; 8] = [
    "card",
    "us_bank_account",
    "alipay",
    "wechat_pay",
    "link",
    "apple_pay",
    "google_pay",
    "other",
];

/// The currencies a method can charge in (lower case), `None` for any Stripe supports.
/// ACH Direct Debit: USD only. Alipay and WeChat Pay: the presentment currencies Stripe lists
/// for accounts that may enable them.
pub fn currencies(method: &str) -> Option<&'static [&'static str]> {
    match method {
        "us_bank_account" => Some(&["usd"]),
        "alipay" => Some(&[
            "aud", "cad", "cny", "eur", "gbp", "hkd", "jpy", "myr", "nzd", "sgd", "usd",
        ]),
        "wechat_pay" => Some(&[
            "aud", "cad", "chf", "cny", "dkk", "eur", "gbp", "hkd", "jpy", "nok", "sek", "sgd",
            "usd",
        ]),
        _ => None,
    }
}

/// How long after a payment Stripe can still refund it, in days; `None`: no such limit
/// that crowdledger enforces (cards refund within Stripe's general rules).
/// Alipay: 90 days. WeChat Pay: 180 days. ACH Direct Debit: 180 days (Stripe's support
/// answer "Refunds for ACH Direct Debit payments").
pub fn refund_window_days(method: &str) -> Option<i64> {
    match method {
        "alipay" => Some(90),
        "wechat_pay" | "us_bank_account" => Some(180),
        _ => None,
    }
}

/// Whether a refund on this method is made later than it is asked: Stripe answers `pending`
/// and says `succeeded` or `failed` afterwards (`refund.updated`, `charge.refund.updated`).
/// Such a refund lowers raised only when it succeeded. Alipay and WeChat Pay, and bank
/// debits: an ACH refund is a new credit to the donor's bank, a few business days on its way,
/// and can fail (a closed account).
pub fn refunds_settle_later(method: &str) -> bool {
    matches!(method, "us_bank_account" | "alipay" | "wechat_pay")
}

/// The `payment_method_types` of a PaymentIntent for the enabled methods: each of them, and
/// Link beside cards (Apple Pay and Google Pay are cards to Stripe and come with `card`).
pub fn intent_types(enabled: &[String]) -> Vec<String> {
    let mut types = enabled.to_vec();
    if enabled.iter().any(|m| m == "card") && !types.iter().any(|m| m == "link") {
        types.push("link".into());
    }
    types
}

/// The payment method type every payment of an intent offering `enabled` will have, if
/// there is only one: `card` for cards alone (Link pays by card too; the charge may later name
/// the wallet or Link more precisely).
pub fn sole_type(enabled: &[String]) -> Option<&str> {
    match enabled {
        [one] => Some(one.as_str()),
        _ => None,
    }
}

/// Reads `PAYMENT_METHODS` (comma-separated) for a fund in `currency` (ISO, any case):
/// each must be enableable, named once, and take the currency. Empty means `card`.
pub fn parse_enabled(text: &str, currency: &str) -> Result<Vec<String>, String> {
    let currency = currency.to_lowercase();
    let mut enabled: Vec<String> = Vec::new();
    for m in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if !ENABLEABLE.contains(&m) {
            return Err(format!(
                "{m:?} is not a payment method crowdledger offers (one of {})",
                ENABLEABLE.join(", ")
            ));
        }
        if enabled.iter().any(|e| e == m) {
            return Err(format!("{m} is named twice"));
        }
        if let Some(takes) = currencies(m)
            && !takes.contains(&currency.as_str())
        {
            return Err(format!(
                "{m} cannot charge in {} (it takes {})",
                currency.to_uppercase(),
                takes.join(", ").to_uppercase()
            ));
        }
        enabled.push(m.to_owned());
    }
    if enabled.is_empty() {
        enabled.push("card".into());
    }
    Ok(enabled)
}

/// The type to record for a charge's `payment_method_details`: the wallet for a card paid
/// with Apple Pay or Google Pay, else the type; one Stripe names that crowdledger does not
/// know is kept as `other`.
pub fn recorded_type(details_type: &str, wallet: Option<&str>) -> &'static str {
    let t = match (details_type, wallet) {
        ("card", Some(w)) => w,
        (t, _) => t,
    };
    RECORDED
        .iter()
        .find(|known| **known == t)
        .copied()
        .unwrap_or(if details_type == "card" {
            "card"
        } else {
            "other"
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_methods_are_checked_against_the_fund_currency() {
        assert_eq!(parse_enabled("", "USD").expect("default"), ["card"]);
        assert_eq!(
            parse_enabled(" card , us_bank_account,alipay,wechat_pay", "usd").expect("all"),
            ["card", "us_bank_account", "alipay", "wechat_pay"]
        );
        assert!(
            parse_enabled("us_bank_account", "EUR")
                .expect_err("ACH is USD only")
                .contains("cannot charge in EUR")
        );
        assert!(parse_enabled("alipay", "EUR").is_ok());
        assert!(parse_enabled("wechat_pay", "MXN").is_err());
        assert!(
            parse_enabled("paypal", "USD")
                .expect_err("unknown")
                .contains("not a payment method")
        );
        assert!(parse_enabled("card,card", "USD").is_err());
    }

    #[test]
    fn cards_bring_link_and_wallets_are_recorded_by_name() {
        assert_eq!(intent_types(&["card".into()]), ["card", "link"]);
        assert_eq!(intent_types(&["alipay".into()]), ["alipay"]);
        assert_eq!(sole_type(&["card".into()]), Some("card"));
        assert_eq!(sole_type(&["card".into(), "alipay".into()]), None);
        assert_eq!(recorded_type("card", Some("apple_pay")), "apple_pay");
        assert_eq!(recorded_type("card", Some("masterpass")), "card");
        assert_eq!(recorded_type("card", None), "card");
        assert_eq!(recorded_type("us_bank_account", None), "us_bank_account");
        assert_eq!(recorded_type("klarna", None), "other");
    }

    #[test]
    fn windows_and_later_refunds() {
        assert_eq!(refund_window_days("alipay"), Some(90));
        assert_eq!(refund_window_days("wechat_pay"), Some(180));
        assert_eq!(refund_window_days("us_bank_account"), Some(180));
        assert_eq!(refund_window_days("card"), None);
        assert!(refunds_settle_later("wechat_pay") && !refunds_settle_later("card"));
        assert!(refunds_settle_later("us_bank_account") && !refunds_settle_later("apple_pay"));
    }
}
