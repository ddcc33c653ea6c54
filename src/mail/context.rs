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
        "public_url": public_url,
    })
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
