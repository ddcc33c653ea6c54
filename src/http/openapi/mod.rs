//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the HTTP API, generated with utoipa
//! from the handlers' `#[utoipa::path]` annotations and the request and response types.
//!
//! Two parts are added here because they cut across handlers: every operation's problem+json
//! answers (one response per status, whose `code` lists exactly what the route can answer
//! with, from [`problems::PROBLEMS`]), and the amount patterns of the fund's currency. The same document
//! answers 405 with an `Allow` header for a method a documented path does not serve.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, security};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::State;
use crate::error::ErrorCode;
use crate::money::{Currency, Money};

mod problems;

pub use problems::problem_codes;
use problems::problem_response;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(openapi_json));
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crowdledger",
        description = "The donation ledger of a legal-defense fund. Amounts are decimal strings \
                       with exactly the currency's minor digits; errors are \
                       application/problem+json with a stable `code`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        super::fund::fund,
        super::fund::healthz,
        openapi_json,
        super::auth::login,
        super::payments::create_donation,
        super::payments::donation_status,
        super::payments::stripe_webhook,
        super::donations::record_offline,
        super::donations::list,
        super::admin::set_intake,
        super::admin::update_fund,
        super::admin::add_period,
        super::admin::update_period,
        super::refunds::refund,
        super::outbox::counts,
        super::outbox::retry,
        super::reports::donations,
        super::reports::periods,
        super::reports::ledger,
        super::reports::summary,
        super::reports::payouts,
        crate::web::charts::daily,
        crate::web::charts::periods,
    ),
    components(schemas(Problem, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = "public", description = "The donation page's API: no credentials"),
        (name = "treasurer", description = "Offline gifts, donations, reports (treasurer or admin)"),
        (name = "admin", description = "Intake, fund, periods, refunds, outbox (admin)"),
        (name = "stripe", description = "Stripe's signed webhooks"),
    ),
)]
struct ApiDoc;

/// The name of the bearer security scheme, as the handlers' `security(...)` name it.
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            security::SecurityScheme::Http(
                security::HttpBuilder::new()
                    .scheme(security::HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/auth/login (HS256, 1 h). No or a bad \
                         token: 401; a role that may not: 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The problem+json document every error is (see `crate::error`).
#[derive(ToSchema)]
#[schema(title = "Problem")]
#[expect(dead_code, reason = "a schema only: errors are rendered by AppError")]
struct Problem {
    /// Always `about:blank`.
    #[schema(rename = "type", examples("about:blank"))]
    kind: String,
    /// Short human title of the code.
    title: String,
    /// The HTTP status.
    status: u16,
    /// The stable machine code.
    code: ErrorCode,
    /// What went wrong, for a person.
    detail: String,
    /// The request field at fault (`invalid_request`, `invalid_amount`).
    field: Option<String>,
    /// What can still be refunded (`refund_exceeds_remaining`).
    refundable: Option<Money>,
    /// What is left to raise (`exceeds_remaining`).
    remaining: Option<Money>,
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(money_pattern(2)))
            .description(Some(
                "An amount: a decimal string with exactly the fund currency's minor digits.",
            ))
            .examples([json!("1000000.00")])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }
}

/// An amount as a request takes it: `"25"`, `"25.5"`, `"25.50"`. Numbers, signs, exponents and
/// separators are refused with `invalid_amount`; so are amounts outside the bounds of the field.
pub struct AmountInput;

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(amount_input_pattern(2)))
            .description(Some(
                "An amount: digits with an optional point and at most the currency's minor \
                 digits (\"25\", \"25.5\", \"25.50\"). Zero, and amounts outside the field's \
                 bounds, are refused with invalid_amount.",
            ))
            .examples([json!("25.00")])
            .into()
    }
}

impl ToSchema for AmountInput {}

fn money_pattern(digits: u32) -> String {
    if digits == 0 {
        "^-?[0-9]+$".into()
    } else {
        format!("^-?[0-9]+\\.[0-9]{{{digits}}}$")
    }
}

/// Positive amounts with at most 13 significant integer digits (`money::MAX_INTEGER_DIGITS`)
/// and at most `digits` decimals: a non-zero integer part with any decimals, or a zero integer
/// part with a non-zero fraction. Leading zeros are free.
fn amount_input_pattern(digits: u32) -> String {
    let int = "0*[1-9][0-9]{0,12}";
    if digits == 0 {
        return format!("^{int}$");
    }
    let fractions: Vec<String> = (0..digits)
        .map(|zeros| {
            let rest = digits - zeros - 1;
            let tail = if rest == 0 {
                String::new()
            } else {
                format!("[0-9]{{0,{rest}}}")
            };
            format!("{}[1-9]{tail}", "0".repeat(zeros as usize))
        })
        .collect();
    format!(
        "^(?:{int}(?:\\.[0-9]{{1,{digits}}})?|0+\\.(?:{}))$",
        fractions.join("|")
    )
}

/// A schema of one of `values`.
pub fn one_of(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// A schema of one of `values`, or `null` (an optional field sent as null).
pub fn one_of_or_null(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            values.iter().map(|v| Value::from(*v)).chain([Value::Null]),
        ))
        .into()
}

/// An optional email: an address, `null`, or blank (taken as absent).
pub fn optional_email() -> Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, SchemaFormat};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
                .max_length(Some(254)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(
            r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        )))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Where the receipt goes, if known: an address, or null or blank when unknown.",
        ))
        .into()
}

/// `status` of a donation (filters, lists).
pub fn donation_status() -> Schema {
    one_of(&super::input::STATUSES)
}

/// `method` of a donation (filters, lists).
pub fn donation_method() -> Schema {
    one_of(&super::input::METHODS)
}

/// The document for a fund kept in `currency`.
pub fn document(currency: Currency) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let digits = currency.digits();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        if let Some(s) = schemas.get_mut("Amount") {
            s["pattern"] = json!(money_pattern(digits));
        }
        if let Some(s) = schemas.get_mut("AmountInput") {
            s["pattern"] = json!(amount_input_pattern(digits));
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
                for code in problem_codes(method, path) {
                    by_status
                        .entry(code.status().as_u16())
                        .or_default()
                        .push(code);
                }
                for (status, codes) in by_status {
                    op["responses"][status.to_string()] = problem_response(status, &codes);
                }
            }
        }
    }
    doc
}

/// The document as served, for the fund's configured currency.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "public",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)),
)]
async fn openapi_json(state: State) -> HttpResponse {
    let currency = state
        .writer
        .snapshot()
        .get()
        .and_then(|s| Currency::from_code(s.view.currency))
        .unwrap_or(state.config.fund.currency);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-cache"))
        .json(document(currency))
}

/// Documented paths (templates split into segments) and their methods, upper case.
static ROUTES: LazyLock<Vec<(Vec<String>, Vec<String>)>> = LazyLock::new(|| {
    let doc = document(Currency::USD);
    doc.get("paths")
        .and_then(Value::as_object)
        .map(|paths| {
            paths
                .iter()
                .map(|(path, item)| {
                    let segments = path.split('/').map(str::to_owned).collect();
                    let methods = item
                        .as_object()
                        .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    (segments, methods)
                })
                .collect()
        })
        .unwrap_or_default()
});

/// The methods the API serves at `path`, if it is a documented path (`{id}` matches any
/// segment); `None` for a path the document does not have.
pub fn allowed_methods(path: &str) -> Option<Vec<String>> {
    let given: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|(segments, methods)| {
        let matches = segments.len() == given.len()
            && segments
                .iter()
                .zip(&given)
                .all(|(s, g)| (s.starts_with('{') && s.ends_with('}') && !g.is_empty()) || s == g);
        matches.then(|| methods.clone())
    })
}

#[cfg(test)]
mod tests {
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
        let codes_422 = &refund["422"]["content"]["application/problem+json"]["schema"]["allOf"][1]
            ["properties"]["code"]["enum"];
        assert_eq!(
            codes_422,
            &json!([
                "invalid_request",
                "invalid_amount",
                "refund_exceeds_remaining"
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
            include_str!("../auth.rs"),
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
        for src in sources {
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
                            || after
                                .starts_with(&format!("{before}{}{after_method}", m.to_uppercase()))
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
}
