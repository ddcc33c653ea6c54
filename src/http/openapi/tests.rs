//! The document against the handlers, the problem table and the parsers.

use super::problems::PROBLEMS;
use super::*;

#[test]
fn every_problem_entry_names_a_documented_operation() {
    let doc = document(Currency::USD);
    for (method, path, _) in PROBLEMS {
        assert!(
            doc.pointer(&format!("/paths/{}/{method}", path.replace('/', "~1")))
                .is_some(),
            "{method} {path} is listed in PROBLEMS but not documented"
        );
    }
}

#[test]
fn problem_responses_group_codes_by_their_status() {
    let doc = document(Currency::USD);
    let refund = &doc["paths"]["/api/admin/donations/{id}/refund"]["post"]["responses"];
    let codes_422 = &refund["422"]["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]
        ["code"]["enum"];
    assert_eq!(
        codes_422,
        &json!([
            "invalid_request",
            "invalid_amount",
            "refund_exceeds_remaining",
            "refund_window_passed"
        ])
    );
    assert!(refund["401"]["headers"]["WWW-Authenticate"].is_object());
    assert!(doc["paths"]["/api/fund"]["get"]["responses"]["401"].is_null());
}

#[test]
fn amount_patterns_follow_the_currency() {
    let usd = document(Currency::USD);
    assert_eq!(
        usd["components"]["schemas"]["Amount"]["pattern"],
        "^-?[0-9]+\\.[0-9]{2}$"
    );
    let jpy = document(Currency::from_code("JPY").expect("JPY"));
    assert_eq!(
        jpy["components"]["schemas"]["Amount"]["pattern"],
        "^-?[0-9]+$"
    );
    assert_eq!(
        jpy["components"]["schemas"]["AmountInput"]["pattern"],
        "^0*[1-9][0-9]{0,12}$"
    );
    assert_eq!(
        usd["components"]["schemas"]["AmountInput"]["pattern"],
        "^(?:0*[1-9][0-9]{0,12}(?:\\.[0-9]{1,2})?|0+\\.(?:[1-9][0-9]{0,1}|0[1-9]))$"
    );
}

#[test]
fn documented_paths_answer_405_with_their_methods() {
    assert_eq!(
        allowed_methods("/api/donations"),
        Some(vec!["GET".to_owned(), "POST".to_owned()])
    );
    assert_eq!(
        allowed_methods("/api/admin/periods/17"),
        Some(vec!["PUT".to_owned()])
    );
    assert_eq!(allowed_methods("/api/admin/periods/"), None);
    assert_eq!(allowed_methods("/api/nothing"), None);
}

/// Every `pattern` of a request schema, with the JSON pointer to it.
fn request_patterns(doc: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k == "pattern" {
                        if let Some(p) = child.as_str() {
                            out.push((at.to_owned(), p.to_owned()));
                        }
                    } else {
                        walk(child, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&doc["components"]["schemas"], "", &mut out);
    out
}

/// The text patterns of the document state exactly what `input::text` and
/// `input::optional_text` accept (short strings, so length never decides).
#[test]
fn text_patterns_match_the_parsers() {
    let doc = document(Currency::USD);
    let patterns = request_patterns(&doc);
    let required = patterns
        .iter()
        .find(|(at, _)| at.ends_with("DonationRequest/properties/donor_name"))
        .map(|(_, p)| regex::Regex::new(p).expect("required text pattern"))
        .expect("donor_name has a pattern");
    let optional = patterns
        .iter()
        .find(|(at, _)| at.ends_with("OfflineRequest/properties/reference"))
        .map(|(_, p)| regex::Regex::new(p).expect("optional text pattern"))
        .expect("reference has a pattern");
    let alphabet: Vec<char> = "a \t\n\r\u{b}\u{c}\u{0}\u{1c}\u{1f}\u{7f}\u{85}\u{9f}\u{a0}\u{2028}\u{3000}\u{feff}\u{200b}\u{202e}<'\"é中"
        .chars()
        .collect();
    let mut checked = 0;
    // Every string of up to three characters from the alphabet.
    let n = alphabet.len();
    for len in 0..=3_u32 {
        for mut i in 0..n.pow(len) {
            let mut s = String::new();
            for _ in 0..len {
                s.push(alphabet[i % n]);
                i /= n;
            }
            let text_ok = super::super::input::text("f", &s, 50).is_ok();
            assert_eq!(required.is_match(&s), text_ok, "required text {s:?}");
            let opt_ok = super::super::input::optional_text("f", Some(&s), 50).is_ok();
            assert_eq!(optional.is_match(&s), opt_ok, "optional text {s:?}");
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
    for (at, p) in &patterns {
        assert!(regex::Regex::new(p).is_ok(), "{at}: {p}");
    }
}

/// The amount pattern accepts exactly the positive amounts the parser takes.
#[test]
fn amount_pattern_matches_the_parser() {
    use crate::money::{AmountBounds, DonationAmount};
    let wide = AmountBounds {
        min_minor: 1,
        max_minor: i64::MAX,
    };
    for currency in [Currency::USD, Currency::from_code("JPY").expect("JPY")] {
        let doc = document(currency);
        let pattern = doc["components"]["schemas"]["AmountInput"]["pattern"]
            .as_str()
            .map(|p| regex::Regex::new(p).expect("amount pattern"))
            .expect("pattern");
        let alphabet: Vec<char> = "0159.-e ,".chars().collect();
        let n = alphabet.len();
        for len in 0..=5_u32 {
            for mut i in 0..n.pow(len) {
                let mut s = String::new();
                for _ in 0..len {
                    s.push(alphabet[i % n]);
                    i /= n;
                }
                let ok = DonationAmount::parse(&s, currency, wide).is_ok();
                assert_eq!(pattern.is_match(&s), ok, "{} {s:?}", currency.code());
            }
        }
        for s in ["9999999999999", "00000009999999999999.99", "10000000000000"] {
            let ok = DonationAmount::parse(s, currency, wide).is_ok();
            assert_eq!(pattern.is_match(s), ok, "{} {s:?}", currency.code());
        }
    }
}

/// Every route registered under `/api/` (and the webhook and liveness routes) is in the
/// document: the registrations in the source are read and compared with the paths.
#[test]
fn every_registered_api_route_is_documented() {
    let sources = [
        include_str!("../fund.rs"),
        include_str!("../auth/mod.rs"),
        include_str!("../auth/account.rs"),
        include_str!("../auth/session_routes.rs"),
        include_str!("../users.rs"),
        include_str!("../disbursements.rs"),
        include_str!("../public.rs"),
        include_str!("../approvals.rs"),
        include_str!("../audit.rs"),
        include_str!("../donors.rs"),
        include_str!("../donations.rs"),
        include_str!("../admin.rs"),
        include_str!("../refunds.rs"),
        include_str!("../payments.rs"),
        include_str!("../outbox.rs"),
        include_str!("../reports.rs"),
        include_str!("mod.rs"),
        include_str!("../../web/charts.rs"),
        include_str!("../../web/mod.rs"),
    ];
    let doc = document(Currency::USD);
    let mut seen = 0;
    // `route("/path", web::get()...` and `with_body_limit("/path", Method::POST, ...`.
    let registrations = [
        ("route(\"", "\", web::", "()"),
        ("with_body_limit(\"", "\", Method::", ","),
    ];
    // rustfmt breaks a long registration after `(` and `,`: read it as one line.
    let squeeze = |src: &str| {
        let mut out = String::with_capacity(src.len());
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '(' || c == ',' {
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if c == ',' {
                    out.push(' ');
                }
            }
        }
        out
    };
    let sources: Vec<String> = sources.iter().map(|s| squeeze(s)).collect();
    for src in &sources {
        let src = src.as_str();
        for (opening, before, after_method) in registrations.iter().flat_map(|(o, b, a)| {
            src.match_indices(o)
                .map(move |(i, _)| (&src[i + o.len()..], *b, *a))
        }) {
            let rest = opening;
            let path = &rest[..rest.find('"').unwrap_or(0)];
            if !(path.starts_with("/api/") || path == "/healthz") {
                continue;
            }
            let after = &rest[path.len()..];
            let method = ["get", "post", "put", "delete", "patch"]
                .into_iter()
                .find(|m| {
                    after.starts_with(&format!("{before}{m}{after_method}"))
                        || after.starts_with(&format!("{before}{}{after_method}", m.to_uppercase()))
                })
                .unwrap_or("?");
            seen += 1;
            assert!(
                doc.pointer(&format!("/paths/{}/{method}", path.replace('/', "~1")))
                    .is_some(),
                "{method} {path} is routed but not in the OpenAPI document"
            );
        }
    }
    assert!(
        doc.pointer("/paths/~1webhooks~1stripe/post").is_some(),
        "the webhook is documented"
    );
    assert!(seen >= 22, "found only {seen} route registrations");
}
