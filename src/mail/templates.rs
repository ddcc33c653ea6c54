//! Email templates (minijinja): embedded from `emails/`, or read from `EMAIL_TEMPLATES_DIR`.
//! HTML parts are auto-escaped; subjects and text parts are not HTML.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

/// Kinds of email.
pub const KINDS: [&str; 4] = ["receipt", "refund", "intake_closed", "year_end"];
/// Languages, as stored on donations.
pub const LOCALES: [&str; 2] = ["en", "zh-CN"];
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

macro_rules! embedded {
    ($($kind:literal),*) => {
        &[$(
            (concat!($kind, ".en.subject.txt"), include_str!(concat!("../../emails/", $kind, ".en.subject.txt"))),
            (concat!($kind, ".en.txt"), include_str!(concat!("../../emails/", $kind, ".en.txt"))),
            (concat!($kind, ".en.html"), include_str!(concat!("../../emails/", $kind, ".en.html"))),
            (concat!($kind, ".zh-CN.subject.txt"), include_str!(concat!("../../emails/", $kind, ".zh-CN.subject.txt"))),
            (concat!($kind, ".zh-CN.txt"), include_str!(concat!("../../emails/", $kind, ".zh-CN.txt"))),
            (concat!($kind, ".zh-CN.html"), include_str!(concat!("../../emails/", $kind, ".zh-CN.html"))),
        )*]
    };
}

/// The templates compiled into the binary.
const EMBEDDED: &[(&str, &str)] = embedded!("receipt", "refund", "intake_closed", "year_end");

/// One rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Every template, parsed once.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// The embedded templates, or those of `dir` (which must have every file).
    pub fn load(dir: Option<&Path>) -> Result<Templates, anyhow::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        for (name, source) in EMBEDDED {
            let source = match dir {
                Some(d) => std::fs::read_to_string(d.join(name))
                    .map_err(|e| anyhow::anyhow!("EMAIL_TEMPLATES_DIR: {name}: {e}"))?,
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    /// Renders `kind` in `locale` (falling back to English) with `ctx`.
    pub fn render<S: Serialize>(
        &self,
        kind: &str,
        locale: &str,
        ctx: &S,
    ) -> Result<Rendered, minijinja::Error> {
        let locale = if LOCALES.contains(&locale) {
            locale
        } else {
            "en"
        };
        let part = |p: &str| -> Result<String, minijinja::Error> {
            self.env
                .get_template(&format!("{kind}.{locale}.{p}"))?
                .render(ctx)
        };
        let [subject, text, html] = PARTS;
        Ok(Rendered {
            subject: part(subject)?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            text: part(text)?,
            html: part(html)?,
        })
    }
}

#[cfg(test)]
#[path = "templates_snapshots.rs"]
mod snapshots;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> serde_json::Value {
        json!({
            "association": "Chinatown Community Association", "fund": "Legal Defense Fund",
            "tax_id": "12-3456789", "no_goods_text": "No goods or services were provided.",
            "public_url": "http://localhost:8080", "currency": "USD",
            "donor_name": "<script>alert(1)</script>", "amount": "25.00", "date": "2020-08-03",
            "method": "check", "receipt_number": "CL-000007", "ledger_hash": "ab".repeat(32),
            "anonymous": false, "reason": "", "raised": "100.00", "target": "100.00",
            "donation_count": 3, "unallocated": "0.00", "closed_at": "2020-08-04T00:00:00Z",
            "periods": [{"label": "August 2020", "budget": "60.00", "covered": "60.00"}],
            "year": 2020, "total": "25.00",
            "gifts": [{"date": "2020-08-03", "amount": "25.00", "method": "card", "receipt_number": "CL-000007"}],
        })
    }

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        let t = Templates::load(None).expect("templates parse");
        for kind in KINDS {
            for locale in LOCALES {
                let r = t.render(kind, locale, &common()).expect("renders");
                assert!(!r.subject.is_empty(), "{kind} {locale} subject");
                assert!(!r.html.contains("<script>"), "{kind} {locale} escapes HTML");
            }
        }
        let r = t.render("receipt", "en", &common()).expect("renders");
        assert!(r.text.contains("25.00"), "{}", r.text);
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(r.text.contains("No goods or services were provided."));
        let zh = t.render("receipt", "zh-CN", &common()).expect("renders");
        assert_ne!(zh.subject, r.subject);
    }
}
