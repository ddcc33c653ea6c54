//! Every kind × language × part, rendered with contexts that take every branch of the
//! templates, pinned byte for byte: a change of layout must not change a sent email.
//! Each part is shown as rendered, under a header with its length and SHA-256, so a
//! difference in white space or a trailing newline fails too.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{KINDS, LOCALES, Rendered, Templates};

/// What every email has; `tax_id` set.
fn base() -> Value {
    json!({
        "association": "Chinatown Community Association", "fund": "Legal Defense Fund",
        "tax_id": "12-3456789", "no_goods_text": "No goods or services were provided.",
        "public_url": "https://give.example.org/", "currency": "USD",
        "tax_status": "501c3", "no_goods_due": true,
    })
}

fn with(extra: Value) -> Value {
    let mut ctx = base();
    if let (Some(map), Value::Object(more)) = (ctx.as_object_mut(), extra) {
        map.extend(more);
    }
    ctx
}

fn receipt(method: &str, anonymous: bool, tax_id: &str, donor: &str) -> Value {
    with(json!({
        "donor_name": donor, "amount": "1250.50", "date": "2020-08-03", "method": method,
        "receipt_number": "CL-000123", "ledger_hash": "0123456789abcdef".repeat(4),
        "ledger_seq": 4127, "anonymous": anonymous, "tax_id": tax_id,
    }))
}

fn refund(reason: &str) -> Value {
    with(json!({
        "donor_name": "Ann O'Neil", "amount": "40.00", "date": "2020-09-14",
        "method": "card", "receipt_number": "CL-000042", "anonymous": false, "reason": reason,
    }))
}

fn intake_closed(periods: Value) -> Value {
    with(json!({
        "raised": "1000000.00", "target": "1000000.00", "donation_count": 4821,
        "unallocated": "12000.00", "closed_at": "2020-08-07T14:03:11Z", "periods": periods,
    }))
}

fn year_end(gifts: Value, total: &str, tax_id: &str) -> Value {
    with(json!({
        "donor_name": "李小龙 & <Family>", "year": 2020, "gifts": gifts, "total": total,
        "tax_id": tax_id,
    }))
}

/// Every (kind, case, context) pinned; two or more cases a kind so each `if`, `for`/`else`
/// and method name is taken.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    let gifts = json!([
        {"date": "2020-03-01", "amount": "25.00", "method": "card", "receipt_number": "CL-000001"},
        {"date": "2020-04-02", "amount": "50.00", "method": "check", "receipt_number": "CL-000010"},
        {"date": "2020-05-03", "amount": "100.00", "method": "wire", "receipt_number": "CL-000100"},
        {"date": "2020-06-04", "amount": "20.00", "method": "cash", "receipt_number": "CL-000200"},
        {"date": "2020-07-05", "amount": "5.00", "method": "other", "receipt_number": "CL-000300"},
        {"date": "2020-08-06", "amount": "1.00", "method": "barter <&>", "receipt_number": "CL-000400"},
    ]);
    let periods = json!([
        {"label": "August 2020", "budget": "600000.00", "covered": "600000.00"},
        {"label": "September 2020", "budget": "388000.00", "covered": "388000.00"},
        {"label": "Appeal <&> \"costs\"", "budget": "50000.00", "covered": "0.00"},
    ]);
    vec![
        (
            "receipt",
            "check_named_tax_id",
            receipt("check", false, "12-3456789", "Ann Lee"),
        ),
        (
            "receipt",
            "card_anonymous_no_tax_id",
            receipt("card", true, "", "Wong Siu Ming"),
        ),
        (
            "receipt",
            "wire",
            receipt("wire", false, "12-3456789", "Bo"),
        ),
        ("receipt", "cash", receipt("cash", true, "12-3456789", "Bo")),
        ("receipt", "other", receipt("other", false, "", "Bo")),
        (
            "receipt",
            "unknown_method_hostile_name",
            receipt(
                "crypto <b>",
                false,
                "12-3456789",
                "<script>alert('x')</script> & Co",
            ),
        ),
        (
            "refund",
            "with_reason",
            refund("Gift made twice <by mistake> & 'refunded'"),
        ),
        ("refund", "no_reason", refund("")),
        ("intake_closed", "periods", intake_closed(periods)),
        ("intake_closed", "no_periods", intake_closed(json!([]))),
        ("year_end", "gifts", year_end(gifts, "201.00", "12-3456789")),
        (
            "year_end",
            "no_gifts_no_tax_id",
            year_end(json!([]), "0.00", ""),
        ),
        ("year_end", "correction", {
            let one = json!([{"date": "2020-03-01", "amount": "25.00", "method": "card", "receipt_number": "CL-000001"}]);
            let mut c = year_end(one, "25.00", "12-3456789");
            c["correction"] = json!(true);
            c
        }),
        ("receipt", "card_fee_covered", {
            let mut c = receipt("card", false, "12-3456789", "Mei Chen");
            c["fee_covered"] = json!("37.44");
            c
        }),
        (
            "payment_failed",
            "bank_debit",
            with(json!({
                "donor_name": "Mei Chen", "amount": "5000.00", "receipt_number": "CL-000777",
                "date": "2026-12-01", "method": "card", "anonymous": false,
            })),
        ),
        (
            "payment_failed",
            "hostile_name",
            with(json!({
                "donor_name": "<b>Bo</b> & 'Wong'", "amount": "12.34", "receipt_number": "CL-000778",
                "date": "2026-12-02", "method": "card", "anonymous": false,
            })),
        ),
        (
            "refund_failed",
            "wechat_pay",
            with(json!({
                "to": "admin@example.org", "refund_donation": 41, "amount": "88.00",
                "refund": "re_3Qx", "failure_reason": "expired_or_canceled_card", "method": "wechat_pay",
            })),
        ),
        (
            "refund_failed",
            "dashboard_refund_no_method",
            with(json!({
                "to": "admin@example.org", "refund_donation": 7, "amount": "1,000.00",
                "refund": "re_<b>", "failure_reason": "unknown", "method": null,
            })),
        ),
        (
            "lookup_code",
            "code",
            with(
                json!({ "code": "042917", "link": "https://give.example.org/receipts/link?t=ab12&lang=en" }),
            ),
        ),
        (
            "lookup_code",
            "hostile_link",
            with(
                json!({ "code": "000001", "link": "https://give.example.org/receipts/link?t=\"><script>x</script>" }),
            ),
        ),
    ]
}

fn part(name: &str, body: &str) -> String {
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    format!(
        "===== {name}: {} bytes, sha256 {digest}\n{body}\n===== end of {name}\n",
        body.len()
    )
}

fn show(r: &Rendered) -> String {
    [
        part("subject", &r.subject),
        part("text", &r.text),
        part("html", &r.html),
    ]
    .concat()
}

#[test]
fn every_kind_language_and_part_renders_as_pinned() {
    let t = Templates::load(None).expect("templates parse");
    let cases = cases();
    for kind in KINDS {
        assert!(
            cases.iter().filter(|(k, _, _)| *k == kind).count() >= 2,
            "{kind} has two cases or more"
        );
    }
    for (kind, case, ctx) in &cases {
        for locale in LOCALES {
            let r = t.render(kind, locale, ctx).expect("renders");
            insta::assert_snapshot!(format!("{kind}__{locale}__{case}"), show(&r));
        }
    }
}

#[test]
fn an_unknown_locale_renders_english() {
    let t = Templates::load(None).expect("templates parse");
    for (kind, _, ctx) in cases() {
        let fr = t.render(kind, "fr", &ctx).expect("renders");
        let en = t.render(kind, "en", &ctx).expect("renders");
        assert_eq!(fr, en, "{kind}");
    }
}
