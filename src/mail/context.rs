//! What the templates of every kind share: the common context, the receipt number.

use serde_json::Value;

use crate::config::MailConfig;

/// What every template may use: the association, the fund, the tax id, the no-goods sentence
/// in the row's language, the site's URL.
pub fn common_context(cfg: &MailConfig, fund: &str, public_url: &str, locale: &str) -> Value {
    serde_json::json!({
        "association": cfg.association.clone().unwrap_or_else(|| fund.to_owned()),
        "fund": fund,
        "tax_id": cfg.tax_id,
        "no_goods_text": if locale == "zh-CN" { &cfg.no_goods_zh } else { &cfg.no_goods_en },
        "tax_status": cfg.tax_status.as_str(),
        "public_url": public_url,
    })
}

/// Receipts of 250 or more (in the fund's currency, as IRC §170(f)(8) sets it in dollars) and
/// year-end statements carry a 501(c)(3)'s "no goods or services" acknowledgement: whether
/// the email of `kind` with template data `payload` is one of them.
pub fn no_goods_due(kind: &str, payload: &Value) -> bool {
    match kind {
        "year_end" => true,
        "receipt" => {
            let currency = payload
                .get("currency")
                .and_then(Value::as_str)
                .and_then(crate::money::Currency::from_code);
            let amount = payload.get("amount").and_then(Value::as_str);
            match (currency, amount) {
                (Some(c), Some(a)) => c
                    .parse_minor(a)
                    .is_ok_and(|minor| minor >= 250 * 10_i64.pow(c.digits())),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The receipt number printed for a donation.
pub fn receipt_number(donation_id: i64) -> String {
    format!("CL-{donation_id:06}")
}

/// Adds `extra`'s members to `ctx` where `ctx` has none of that name.
pub fn merge(ctx: &mut Value, extra: &Value) {
    if let (Value::Object(c), Value::Object(e)) = (ctx, extra) {
        for (k, v) in e {
            c.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acknowledgement_is_due_from_250_and_on_every_statement() {
        let receipt = |amount: &str, currency: &str| {
            no_goods_due(
                "receipt",
                &serde_json::json!({ "amount": amount, "currency": currency }),
            )
        };
        assert!(!receipt("249.99", "USD"));
        assert!(receipt("250.00", "USD"));
        assert!(receipt("1000000.00", "USD"));
        assert!(!receipt("249", "JPY"));
        assert!(receipt("250", "JPY"));
        assert!(!receipt("lots", "USD"));
        assert!(no_goods_due("year_end", &Value::Null));
        assert!(!no_goods_due(
            "refund",
            &serde_json::json!({ "amount": "900.00", "currency": "USD" })
        ));
    }
}
