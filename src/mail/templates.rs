//! Email templates (minijinja): embedded from `emails/`, or read from `EMAIL_TEMPLATES_DIR`.
//! One layout per part (`layout.html`, `layout.txt`), one template per kind and part, and one
//! strings file per language (`i18n/{locale}.json`), given to the templates as `t`; see
//! `emails/README.md`. HTML parts are auto-escaped; subjects and text parts are not HTML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use minijinja::value::{Kwargs, Value, merge_maps};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, HtmlEscape, State, context};
use serde::Serialize;

/// Kinds of email.
pub const KINDS: [&str; 7] = [
    "receipt",
    "refund",
    "intake_closed",
    "year_end",
    "lookup_code",
    "payment_failed",
    "refund_failed",
];
/// Languages, as stored on donations.
pub const LOCALES: [&str; 2] = ["en", "zh-CN"];

/// `(name, text)` of each listed file of `emails/`, compiled in.
macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../emails/", $name)))),*]
    };
}

/// The templates compiled into the binary: the shared pieces, then each kind's text and HTML.
const TEMPLATES: &[(&str, &str)] = embedded!(
    "layout.html",
    "layout.txt",
    "macros.html",
    "subject.txt",
    "receipt.txt",
    "receipt.html",
    "refund.txt",
    "refund.html",
    "intake_closed.txt",
    "intake_closed.html",
    "year_end.txt",
    "year_end.html",
    "lookup_code.txt",
    "lookup_code.html",
    "payment_failed.txt",
    "payment_failed.html",
    "refund_failed.txt",
    "refund_failed.html",
);

/// The strings of each language in `LOCALES`, compiled in.
const STRINGS: &[(&str, &str)] = embedded!("i18n/en.json", "i18n/zh-CN.json");

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

/// A language's strings, as the text parts and as the HTML parts see them.
struct Strings {
    text: Value,
    /// The same strings marked safe: they are ours and may hold markup (`<strong>`).
    html: Value,
}

/// Every template and string file, parsed once.
pub struct Templates {
    env: Environment<'static>,
    strings: BTreeMap<&'static str, Strings>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// The embedded files, or those of `dir` (which must have every file, in the same layout).
    pub fn load(dir: Option<&Path>) -> Result<Templates, anyhow::Error> {
        let read = |name: &str, embedded: &str| match dir {
            Some(d) => std::fs::read_to_string(d.join(name))
                .map_err(|e| anyhow::anyhow!("EMAIL_TEMPLATES_DIR: {name}: {e}")),
            None => Ok(embedded.to_owned()),
        };
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        env.add_filter("fill", fill);
        for (name, source) in TEMPLATES {
            env.add_template_owned(*name, read(name, source)?)
                .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        }
        let mut strings = BTreeMap::new();
        let mut english = BTreeSet::new();
        for locale in LOCALES {
            let name = format!("i18n/{locale}.json");
            let embedded = STRINGS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, s)| *s);
            let json: serde_json::Value = serde_json::from_str(&read(&name, embedded)?)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            // A key one language lacks would fail only when an email needs it: refuse it now.
            let keys = key_paths(&json, "");
            if locale == "en" {
                english = keys;
            } else if let Some(k) = english.symmetric_difference(&keys).next() {
                anyhow::bail!("{name}: the key {k} is in one of i18n/en.json and {name} only");
            }
            let (text, html) = (Value::from_serialize(&json), marked_safe(&json));
            strings.insert(locale, Strings { text, html });
        }
        Ok(Templates { env, strings })
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
        let strings = self.strings.get(locale).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("no strings for {locale}"),
            )
        })?;
        let ctx = Value::from_serialize(ctx);
        let part = |name: &str, t: &Value| -> Result<String, minijinja::Error> {
            // The first map wins: `kind`, `lang` and `t` are ours whatever the caller sends.
            let ours = context! { kind, lang => locale, t => t.clone() };
            let ctx = merge_maps([ours, ctx.clone()]);
            self.env.get_template(name)?.render(ctx)
        };
        Ok(Rendered {
            subject: part("subject.txt", &strings.text)?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            text: part(&format!("{kind}.txt"), &strings.text)?,
            html: part(&format!("{kind}.html"), &strings.html)?,
        })
    }
}

/// The filter `{{ t.key | fill }}`: the string with each `{name}` replaced by the keyword
/// argument `name`, or else the template variable `name`, printed as `{{ name }}` would be
/// (an undefined one as nothing, like the environment's lenient undefined). In an HTML
/// template the values are escaped and the result is marked safe: the string's own text is
/// ours and may hold markup. A `{` not followed by a name and `}` stays as it is.
fn fill(state: &State, s: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let Some(text) = s.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("fill: {s:?} is not a string (a key missing from i18n?)"),
        ));
    };
    let html = !matches!(state.auto_escape(), AutoEscape::None);
    let mut given = BTreeMap::new();
    for name in kwargs.args() {
        given.insert(name.to_owned(), kwargs.get::<Value>(name)?);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name = after
            .find('}')
            .map(|close| &after[..close])
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let Some(name) = name else {
            out.push('{');
            rest = after;
            continue;
        };
        let value = given
            .get(name)
            .cloned()
            .or_else(|| state.lookup(name))
            .unwrap_or_default();
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        if html && !value.is_safe() {
            out.push_str(&HtmlEscape(&shown).to_string());
        } else {
            out.push_str(&shown);
        }
        rest = &after[name.len() + 1..];
    }
    out.push_str(rest);
    Ok(if html {
        Value::from_safe_string(out)
    } else {
        Value::from(out)
    })
}

/// `json` with every string marked safe, for the HTML parts.
fn marked_safe(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::String(s) => Value::from_safe_string(s.clone()),
        serde_json::Value::Array(items) => items.iter().map(marked_safe).collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), marked_safe(v)))
            .collect(),
        other => Value::from_serialize(other),
    }
}

/// The dotted paths of every key of `json`'s objects, to check both languages have the same.
fn key_paths(json: &serde_json::Value, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let serde_json::Value::Object(map) = json {
        for (k, v) in map {
            let path = format!("{prefix}{k}");
            out.extend(key_paths(v, &format!("{path}.")));
            out.insert(path);
        }
    }
    out
}

#[cfg(test)]
mod snapshots;

#[cfg(test)]
mod override_dir;

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
        let zh = t.render("receipt", "zh-CN", &common()).expect("renders");
        assert_ne!(zh.subject, r.subject);
    }

    /// `TAX_STATUS`: `not_deductible` says so on every receipt and statement; `501c3` gives the
    /// no-goods acknowledgement where it is due (receipts of 250 or more, statements); `none`
    /// says nothing of tax. Both languages, both parts.
    #[test]
    fn what_receipts_say_of_tax_follows_the_tax_status() {
        let t = Templates::load(None).expect("templates parse");
        let not_deductible = [
            ("en", "are not deductible as charitable contributions"),
            ("zh-CN", "不能作为慈善捐款"),
        ];
        for kind in ["receipt", "year_end"] {
            for (locale, phrase) in not_deductible {
                for (status, due) in [
                    ("not_deductible", false),
                    ("501c3", true),
                    ("501c3", false),
                    ("none", true),
                ] {
                    let mut ctx = common();
                    ctx["tax_status"] = json!(status);
                    ctx["no_goods_due"] = json!(due);
                    let r = t.render(kind, locale, &ctx).expect("renders");
                    for part in [&r.text, &r.html] {
                        assert_eq!(
                            part.contains(phrase),
                            status == "not_deductible",
                            "{kind} {locale} {status}: {part}"
                        );
                        assert_eq!(
                            part.contains("No goods or services were provided."),
                            status == "501c3" && due,
                            "{kind} {locale} {status} due={due}: {part}"
                        );
                    }
                }
            }
        }
    }
}
