//! `EMAIL_TEMPLATES_DIR`: a folder with the layout of `emails/` replaces the embedded files,
//! and a broken folder is refused at load, not when a donor's email is due.

use serde_json::json;

use super::{STRINGS, TEMPLATES, Templates};

/// A folder with every embedded file, as `emails/` has them, with `from` replaced by `to`
/// in the file `name`.
fn folder_with(name: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("i18n")).expect("i18n dir");
    for (file, text) in TEMPLATES.iter().chain(STRINGS) {
        std::fs::write(dir.path().join(file), text).expect("write");
    }
    let path = dir.path().join(name);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{name} has {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    dir
}

/// What loading `dir` says when it refuses it.
fn refusal(dir: &tempfile::TempDir) -> String {
    Templates::load(Some(dir.path()))
        .expect_err("refused")
        .to_string()
}

/// Every variable any kind uses.
fn full_ctx() -> serde_json::Value {
    json!({
        "association": "CCA", "fund": "Defense Fund", "tax_id": "1", "no_goods_text": "None.",
        "public_url": "https://give.example.org", "currency": "USD", "donor_name": "Ann",
        "amount": "40.00", "date": "2020-09-14", "receipt_number": "CL-000042", "reason": "x",
        "method": "card", "ledger_hash": "ab", "anonymous": true, "raised": "9.00",
        "target": "9.00", "donation_count": 2, "unallocated": "0.00", "closed_at": "2020",
        "periods": [{"label": "Aug", "budget": "9.00", "covered": "9.00"}], "year": 2020,
        "total": "40.00",
        "gifts": [{"date": "2020-09-01", "amount": "40.00", "method": "cash", "receipt_number": "CL-1"}],
    })
}

#[test]
fn a_folder_with_one_string_changed_overrides_the_embedded_files() {
    let dir = folder_with(
        "i18n/zh-CN.json",
        "\"heading\": \"捐款退款通知\"",
        "\"heading\": \"退款通知书 {receipt_number}\"",
    );
    let embedded = Templates::load(None).expect("embedded");
    let custom = Templates::load(Some(dir.path())).expect("the folder loads");

    let refund_zh = |t: &Templates| t.render("refund", "zh-CN", &full_ctx()).expect("renders");
    let (after, before) = (refund_zh(&custom), refund_zh(&embedded));
    assert!(
        after.html.contains(">退款通知书 CL-000042</h1>"),
        "{after:?}"
    );
    assert!(before.html.contains(">捐款退款通知</h1>"), "{before:?}");
    assert_eq!(after.text, before.text, "the text part does not use it");
    for locale in ["en", "zh-CN"] {
        for kind in super::KINDS {
            if (kind, locale) != ("refund", "zh-CN") {
                assert_eq!(
                    custom.render(kind, locale, &full_ctx()).expect("renders"),
                    embedded.render(kind, locale, &full_ctx()).expect("renders"),
                    "{kind} {locale} unchanged"
                );
            }
        }
    }
}

#[test]
fn a_folder_with_a_layout_changed_changes_every_kind() {
    let dir = folder_with("layout.html", "<h1 ", "<h1 class=\"x\" ");
    let custom = Templates::load(Some(dir.path())).expect("the folder loads");
    for kind in super::KINDS {
        for locale in ["en", "zh-CN"] {
            let r = custom.render(kind, locale, &full_ctx()).expect("renders");
            assert!(r.html.contains("<h1 class=\"x\" "), "{kind} {locale}");
        }
    }
}

#[test]
fn a_folder_missing_a_file_is_refused_with_its_name() {
    let dir = folder_with("layout.txt", "", "");
    std::fs::remove_file(dir.path().join("macros.html")).expect("rm");
    let err = refusal(&dir);
    assert!(err.contains("macros.html"), "{err}");
}

#[test]
fn a_string_only_one_language_has_is_refused_at_load() {
    // The first "keep" of en.json is the receipt's.
    let dir = folder_with("i18n/en.json", "\"keep\":", "\"kept\":");
    let err = refusal(&dir);
    assert!(err.contains("receipt.kee"), "{err}");
}

#[test]
fn a_placeholder_takes_keyword_arguments_first_and_an_undefined_one_prints_nothing() {
    let (from, to) = (
        "your donation {receipt_number}",
        "{nothing}{year} {{receipt_number}}",
    );
    let dir = folder_with("i18n/en.json", from, to);
    let custom = Templates::load(Some(dir.path())).expect("the folder loads");
    let r = custom.render("refund", "en", &full_ctx()).expect("renders");
    assert_eq!(r.subject, "Refund of 2020 {CL-000042} — Defense Fund");
    let r = custom
        .render("year_end", "en", &full_ctx())
        .expect("renders");
    assert!(
        r.text.contains("2020-09-01  CL-1   40.00 USD (cash)"),
        "the gift's own receipt number, not the context's: {}",
        r.text
    );
}
