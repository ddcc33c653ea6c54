//! The layers' dependencies point down: the ledger, the reports, the pure rules, money, the
//! configuration and the shared schema pieces import nothing from the web, HTTP or Stripe
//! layers (ARCHITECTURE.md). Read from the sources, so an import that runs back up fails here
//! on both engines' runs.

use std::path::{Path, PathBuf};

/// The lower layers, relative to `src/`.
const LOWER: &[&str] = &[
    "ledger",
    "reports",
    "domain",
    "config",
    "config.rs",
    "money.rs",
    "api_schema.rs",
];
/// What they must not import.
const UPPER: &[&str] = &["http", "web", "payments"];

fn rust_files(at: &Path, out: &mut Vec<PathBuf>) {
    if at.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(at)
            .expect("readable source folder")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if at.extension().is_some_and(|e| e == "rs") {
        out.push(at.to_owned());
    }
}

/// The upper modules a line of code names through `crate::` (`crate::http::x`,
/// `crate::{http, ...}`), comments aside.
fn upward(line: &str) -> Vec<&'static str> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let named: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or_default())
                .collect(),
            None => vec![
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default(),
            ],
        };
        found.extend(UPPER.iter().copied().filter(|u| named.contains(u)));
    }
    found
}

#[test]
fn the_lower_layers_import_nothing_from_http_web_or_payments() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for l in LOWER {
        rust_files(&src.join(l), &mut files);
    }
    assert!(files.len() > 30, "found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for u in upward(line) {
                bad.push(format!("{}:{}: crate::{u}", f.display(), n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that run back up:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_each_form_of_import() {
    assert_eq!(
        upward("use crate::http::client_ip::TrustedProxy;"),
        ["http"]
    );
    assert_eq!(upward("use crate::{db, payments::events};"), ["payments"]);
    assert_eq!(
        upward("    #[schema(schema_with = crate::web::x)]"),
        ["web"]
    );
    assert!(upward("use crate::db::DbConn; // not crate::http").is_empty());
    assert!(upward("use crate::httpish::X;").is_empty());
}
