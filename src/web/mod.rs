//! The HTML pages (the donation form and the admin page), their static assets, and the
//! security headers every response carries. Templates, strings and assets are compiled in.

pub(crate) mod charts;
mod donate_return;
mod ledger;
mod receipts;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::error::AppError;
use crate::http::State;

/// The languages of the pages.
pub const LANGS: [&str; 2] = ["en", "zh-CN"];
/// Preset amounts on the form.
pub const PRESETS: [&str; 4] = ["25", "50", "100", "250"];

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../web/templates/base.html")),
    (
        "donate.html",
        include_str!("../../web/templates/donate.html"),
    ),
    ("admin.html", include_str!("../../web/templates/admin.html")),
    (
        "donate_return.html",
        include_str!("../../web/templates/donate_return.html"),
    ),
    (
        "receipts.html",
        include_str!("../../web/templates/receipts.html"),
    ),
    (
        "statement.html",
        include_str!("../../web/templates/statement.html"),
    ),
    (
        "ledger.html",
        include_str!("../../web/templates/ledger.html"),
    ),
];
const STRINGS: &[(&str, &str)] = &[
    ("en", include_str!("../../web/i18n/en.json")),
    ("zh-CN", include_str!("../../web/i18n/zh-CN.json")),
];
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "site.css",
        "text/css; charset=utf-8",
        include_str!("../../web/static/site.css"),
    ),
    (
        "donate.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/static/donate.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/static/admin.js"),
    ),
];

/// Changes whenever an asset does, so browsers never run a stale script against a new page.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (_, _, body) in ASSETS {
        h.update(body.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
});

struct Pages {
    env: Environment<'static>,
    strings: BTreeMap<&'static str, Value>,
}

static PAGES: LazyLock<Result<Pages, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let mut strings = BTreeMap::new();
    for (lang, text) in STRINGS {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("web/i18n/{lang}.json: {e}"))?;
        strings.insert(*lang, v);
    }
    Ok(Pages { env, strings })
});

/// Checks at start-up that every page template and string file parses.
pub fn check() -> Result<(), anyhow::Error> {
    PAGES
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("web pages: {e}"))
}

/// Registers the pages and assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(donate))
        .route("/admin", web::get().to(admin))
        .route("/static/{name}", web::get().to(asset))
        .configure(charts::routes)
        .configure(ledger::routes)
        .configure(donate_return::routes)
        .configure(receipts::routes);
}

/// The page language: `?lang=`, else the first of `Accept-Language` we have, else English.
pub fn language(req: &HttpRequest) -> &'static str {
    let query = req.query_string();
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("lang=") {
            if v.eq_ignore_ascii_case("zh-CN") || v.eq_ignore_ascii_case("zh") {
                return "zh-CN";
            }
            if v.eq_ignore_ascii_case("en") {
                return "en";
            }
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for part in accept.split(',') {
        let tag = part
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if tag.starts_with("zh") {
            return "zh-CN";
        }
        if tag.starts_with("en") {
            return "en";
        }
    }
    "en"
}

fn render(template: &str, lang: &str, mut ctx: Value) -> Result<HttpResponse, AppError> {
    let pages = PAGES.as_ref().map_err(AppError::internal)?;
    let t = pages.strings.get(lang).cloned().unwrap_or(Value::Null);
    if let Value::Object(map) = &mut ctx {
        map.insert("lang".into(), json!(lang));
        map.insert(
            "other_lang".into(),
            json!(if lang == "en" { "zh-CN" } else { "en" }),
        );
        map.insert("t_json".into(), json!(t.to_string()));
        map.insert("t".into(), t);
        map.insert("asset".into(), json!(ASSET_VERSION.as_str()));
    }
    let html = pages
        .env
        .get_template(template)
        .and_then(|tpl| tpl.render(&ctx))
        .map_err(|e| AppError::internal(format!("rendering {template}: {e:#}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Language"))
        .body(html))
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        (part.max(0) * 100 / whole).min(100)
    }
}

async fn donate(state: State, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let lang = language(&req);
    let snap = state
        .writer
        .snapshot()
        .get()
        .ok_or_else(|| AppError::unavailable("no fund snapshot yet"))?;
    let c = state.config.fund.currency;
    let view = &snap.view;
    let minor = |m: &crate::money::Money| c.to_minor(m.decimal()).unwrap_or(0);
    let periods: Vec<Value> = view
        .periods
        .iter()
        .map(|p| {
            json!({
                "label": p.label, "budget": p.budget, "covered": p.covered, "remaining": p.remaining,
                "percent": percent(minor(&p.covered), minor(&p.budget)),
            })
        })
        .collect();
    let bounds = state.config.donation_bounds;
    let stripe = state.payments.as_ref().map_or_else(
        || json!({ "available": false, "publishable_key": "", "js_url": "" }),
        |p| json!({ "available": true, "publishable_key": p.publishable_key, "js_url": p.js_url }),
    );
    render(
        "donate.html",
        lang,
        json!({
            "fund": view,
            "head": snap.head,
            "percent": percent(minor(&view.raised), minor(&view.target)),
            "periods": periods,
            "presets": PRESETS,
            "min": c.format(bounds.min_minor),
            "max": c.format(bounds.max_minor),
            "currency": c.code(),
            "stripe": stripe,
            "checks": state.config.checks,
            "fee_cover": state.payments.as_ref().and(state.config.fee_cover),
            "not_deductible": state.config.mail.tax_status == crate::config::TaxStatus::NotDeductible,
            "association": state.config.mail.association.clone().unwrap_or_else(|| view.name.clone()),
        }),
    )
}

async fn admin(state: State, req: HttpRequest) -> Result<HttpResponse, AppError> {
    // The payment methods the donor page offers, each with Stripe's limits beside it.
    let methods: Vec<&str> = state
        .payments
        .as_ref()
        .map(|p| p.methods.iter().map(String::as_str).collect())
        .unwrap_or_default();
    render(
        "admin.html",
        language(&req),
        json!({ "payment_methods": methods }),
    )
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let (_, content_type, body) = ASSETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        AppError::new(
            crate::error::ErrorCode::NotFound,
            format!("no asset {name}"),
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(*body))
}

/// The origin (scheme://host[:port]) of a URL, for the Content-Security-Policy.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty() && !host.contains([' ', ';', '\'', '"']))
        .then(|| format!("{scheme}://{host}"))
}

/// The Content-Security-Policy: scripts, frames and connections only to our origin and
/// Stripe's; no inline script or style.
pub fn content_security_policy(config: &crate::config::Config) -> String {
    let stripe = config.stripe.as_ref();
    let js = stripe
        .and_then(|s| origin(&s.js_url))
        .unwrap_or_else(|| "https://js.stripe.com".into());
    let api = stripe
        .and_then(|s| s.api_base.as_deref().and_then(origin))
        .unwrap_or_else(|| "https://api.stripe.com".into());
    // Stripe's own Stripe.js also loads the Payment Element's parts from its subdomains
    // (Stripe's CSP guide lists `https://*.js.stripe.com` for scripts and frames).
    let js = if js == "https://js.stripe.com" {
        "https://js.stripe.com https://*.js.stripe.com".to_owned()
    } else {
        js
    };
    format!(
        "default-src 'self'; script-src 'self' {js}; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {api} {js}; frame-src {js} https://hooks.stripe.com; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers on every response: the policy above, no MIME sniffing, no referrer to other sites,
/// no framing.
pub fn security_headers(csp: &str) -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("Content-Security-Policy", csp.to_owned()))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add(("X-Frame-Options", "DENY"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_for_the_policy() {
        assert_eq!(
            origin("https://js.stripe.com/v3/").as_deref(),
            Some("https://js.stripe.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8420").as_deref(),
            Some("http://127.0.0.1:8420")
        );
        assert_eq!(origin("nonsense"), None);
        assert_eq!(origin("http://a b/"), None);
    }

    #[test]
    fn percent_is_clamped() {
        assert_eq!(percent(50, 200), 25);
        assert_eq!(percent(500, 200), 100);
        assert_eq!(percent(5, 0), 0);
    }
}
