//! `/receipts`: donors find their own gifts, resend receipts and print a year's statement,
//! with plain HTML forms (no JavaScript needed). See `crate::lookup` for the codes and the
//! session; every page answers the same whether or not the address has given.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{language, render};
use crate::error::{AppError, ErrorCode};
use crate::http::State;
use crate::ledger::ops::{QueueEmails, QueuedEmail};
use crate::ledger::resend::ResendReceipt;
use crate::lookup;

mod forms;
mod session;

use forms::{CodeForm, EmailForm, GiftsQuery, LangQuery, LinkForm, LinkQuery, TokenForm};
use session::{form_session, session, signed_in};

/// The donor's session cookie (HttpOnly, SameSite=Strict, path `/receipts`).
const COOKIE: &str = "cl_receipts";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/receipts", web::get().to(ask))
        .route("/receipts/code", web::post().to(send_code))
        .route("/receipts/verify", web::post().to(verify))
        .route("/receipts/link", web::get().to(confirm_link))
        .route("/receipts/link", web::post().to(spend_link))
        .route("/receipts/gifts", web::get().to(gifts))
        .route("/receipts/gifts/{id}/resend", web::post().to(resend))
        .route("/receipts/statement/{year}", web::get().to(statement))
        .route("/receipts/signout", web::post().to(sign_out));
    // The language switch of a page answered to a POST asks for it again with GET.
    for path in ["/receipts/code", "/receipts/verify", "/receipts/signout"] {
        cfg.route(path, web::get().to(back_to_start));
    }
}

/// The page language: the form's or query's `lang` when it is one of ours, else the request's.
fn lang_of(req: &HttpRequest, asked: Option<&str>) -> &'static str {
    asked
        .and_then(|l| super::LANGS.iter().find(|x| **x == l))
        .copied()
        .unwrap_or_else(|| language(req))
}

fn strings(lang: &str) -> Value {
    super::PAGES
        .as_ref()
        .ok()
        .and_then(|p| p.strings.get(lang).cloned())
        .unwrap_or(Value::Null)
}

fn text(lang: &str, key: &str) -> String {
    strings(lang)[key].as_str().unwrap_or(key).to_owned()
}

fn page(state: &State, lang: &str, stage: &str, mut ctx: Value) -> Result<HttpResponse, AppError> {
    let fund_name = state
        .writer
        .snapshot()
        .get()
        .map(|s| s.view.name.clone())
        .unwrap_or_default();
    if let Value::Object(map) = &mut ctx {
        map.insert("stage".into(), json!(stage));
        map.insert("fund_name".into(), json!(fund_name));
        map.insert("currency".into(), json!(state.config.fund.currency.code()));
    }
    let mut resp = render("receipts.html", lang, ctx)?;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The page of `stage` again, for `email`, with the message `key` as its error.
fn refused(
    state: &State,
    lang: &str,
    stage: &str,
    email: &str,
    key: &str,
) -> Result<HttpResponse, AppError> {
    let error = text(lang, key);
    page(
        state,
        lang,
        stage,
        json!({ "email": email, "error": error }),
    )
}

pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn ask(
    state: State,
    req: HttpRequest,
    q: web::Query<LangQuery>,
) -> Result<HttpResponse, AppError> {
    let lang = lang_of(&req, q.lang.as_deref());
    page(&state, lang, "ask", json!({ "email": "" }))
}

async fn back_to_start(req: HttpRequest, q: web::Query<LangQuery>) -> HttpResponse {
    let lang = lang_of(&req, q.lang.as_deref());
    see_other(&format!("/receipts?lang={lang}"))
}

/// Emails a code (and link) when the address has given; answers the same page either way.
async fn send_code(
    state: State,
    req: HttpRequest,
    form: web::Form<EmailForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let lang = lang_of(&req, form.lang.as_deref());
    let email = lookup::normalize(&form.email);
    if email.len() > 254 || crate::auth::Email::parse(&email).is_none() {
        return refused(&state, lang, "ask", &form.email, "receipts_invalid_email");
    }
    let limited = state
        .limits
        .lookup(&req)
        .and_then(|()| state.limits.lookup_email(&email));
    if limited.is_err() {
        return refused(&state, lang, "ask", &email, "receipts_too_many");
    }
    let now = chrono::Utc::now().naive_utc();
    let lookup_email = email.clone();
    // The same work whether or not the address has given (a code is made either way, and the
    // writer is asked either way), so the time taken tells nothing; only a giver is emailed.
    let (gave, (code, link)) = crate::http::with_conn(&state, move |c| {
        let gave = lookup::has_gifts(c, &lookup_email)?;
        Ok((gave, lookup::issue(c, &lookup_email, now)?))
    })
    .await?;
    let base = state.config.public_base_url.trim_end_matches('/');
    let url = format!("{base}/receipts/link?t={link}&lang={lang}");
    let emails = gave
        .then(|| QueuedEmail {
            kind: "lookup_code".into(),
            dedupe_key: format!("lookup:{}", &link[..16]),
            locale: lang.to_owned(),
            payload: json!({ "to": email, "code": code, "link": url }),
        })
        .into_iter()
        .collect();
    state.writer.submit(QueueEmails(emails)).await?;
    page(&state, lang, "code", json!({ "email": email }))
}

async fn verify(
    state: State,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let lang = lang_of(&req, form.lang.as_deref());
    let email = lookup::normalize(&form.email);
    if state.limits.lookup(&req).is_err() {
        return refused(&state, lang, "code", &email, "receipts_too_many");
    }
    let now = chrono::Utc::now().naive_utc();
    let (checked, code) = (email.clone(), form.code);
    let right = crate::http::with_conn(&state, move |c| {
        Ok(lookup::check_code(c, &checked, &code, now)?)
    })
    .await?;
    if right {
        return Ok(signed_in(&state, &email, lang));
    }
    refused(&state, lang, "code", &email, "receipts_wrong_code")
}

/// The emailed link: a page with a button; opening it spends nothing.
async fn confirm_link(
    state: State,
    req: HttpRequest,
    q: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let lang = lang_of(&req, q.lang.as_deref());
    page(&state, lang, "confirm", json!({ "link": q.t }))
}

async fn spend_link(
    state: State,
    req: HttpRequest,
    form: web::Form<LinkForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let lang = lang_of(&req, form.lang.as_deref());
    let now = chrono::Utc::now().naive_utc();
    let token = form.t;
    let email =
        crate::http::with_conn(&state, move |c| Ok(lookup::spend_link(c, &token, now)?)).await?;
    match email {
        Some(email) => Ok(signed_in(&state, &email, lang)),
        None => refused(&state, lang, "ask", "", "receipts_link_expired"),
    }
}

async fn gifts(
    state: State,
    req: HttpRequest,
    q: web::Query<GiftsQuery>,
) -> Result<HttpResponse, AppError> {
    let lang = lang_of(&req, q.lang.as_deref());
    let Some((token, email)) = session(&state, &req) else {
        return refused(&state, lang, "ask", "", "receipts_session_ended");
    };
    let (currency, tz) = (state.config.fund.currency, state.config.timezone);
    let who = email.clone();
    let list =
        crate::http::with_conn(&state, move |c| lookup::gifts(c, &who, currency, tz)).await?;
    let mut years: Vec<i32> = list
        .iter()
        .filter(|g| g.status == "succeeded")
        .map(|g| chrono::Datelike::year(&g.date))
        .collect();
    years.sort_unstable();
    years.dedup();
    let notice = match q.sent.as_deref() {
        Some("1") => Some(text(lang, "receipts_resent")),
        Some("limit") => None,
        _ => None,
    };
    let error = (q.sent.as_deref() == Some("limit")).then(|| text(lang, "receipts_resend_limit"));
    let form_token = lookup::form_token(state.config.jwt_secret.bytes(), &token);
    page(
        &state,
        lang,
        "gifts",
        json!({ "email": email, "gifts": list, "years": years, "form_token": form_token,
                "notice": notice, "error": error }),
    )
}

async fn resend(
    state: State,
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let lang = lang_of(&req, form.lang.as_deref());
    let (_, email) = form_session(&state, &req, &form.form_token)?;
    let sent = state
        .writer
        .submit(ResendReceipt {
            donation_id: id.into_inner(),
            email,
        })
        .await;
    match sent {
        Ok(_) => Ok(see_other(&format!("/receipts/gifts?lang={lang}&sent=1"))),
        Err(e) if e.code == ErrorCode::RateLimited => Ok(see_other(&format!(
            "/receipts/gifts?lang={lang}&sent=limit"
        ))),
        Err(e) => Err(e),
    }
}

async fn statement(
    state: State,
    req: HttpRequest,
    year: web::Path<i32>,
    q: web::Query<LangQuery>,
) -> Result<HttpResponse, AppError> {
    let lang = lang_of(&req, q.lang.as_deref());
    let Some((_, email)) = session(&state, &req) else {
        return Ok(see_other(&format!("/receipts?lang={lang}")));
    };
    let year = year.into_inner();
    let (currency, tz) = (state.config.fund.currency, state.config.timezone);
    let who = email.clone();
    let list =
        crate::http::with_conn(&state, move |c| lookup::gifts(c, &who, currency, tz)).await?;
    let mut total = 0_i64;
    let rows: Vec<Value> = list
        .iter()
        .filter(|g| g.status == "succeeded" && chrono::Datelike::year(&g.date) == year)
        .map(|g| {
            let counted = g.amount_minor - g.refunded_minor;
            total += counted;
            json!({ "date": g.date, "method": g.method, "amount": g.amount,
                    "refunded": g.refunded, "counted": currency.format(counted) })
        })
        .collect();
    let fund_name = state
        .writer
        .snapshot()
        .get()
        .map(|s| s.view.name.clone())
        .unwrap_or_default();
    let mut resp = render(
        "statement.html",
        lang,
        json!({ "year": year, "email": email, "gifts": rows, "total": currency.format(total),
                "currency": currency.code(), "fund_name": fund_name }),
    )?;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

async fn sign_out(
    state: State,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let lang = lang_of(&req, form.lang.as_deref());
    let _ = form_session(&state, &req, &form.form_token)?;
    let mut resp = see_other(&format!("/receipts?lang={lang}"));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "cl_receipts=; Path=/receipts; Max-Age=0; HttpOnly; SameSite=Strict",
        ),
    );
    Ok(resp)
}
