//! The donor's session on `/receipts`: a signed cookie (HttpOnly, SameSite=Strict, path
//! `/receipts`, Secure behind https) and a form token tied to it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::{COOKIE, see_other};
use crate::error::{AppError, ErrorCode};
use crate::http::State;
use crate::lookup;

pub(super) fn secure(state: &State) -> bool {
    state.config.public_base_url.starts_with("https://")
}

/// A 303 to the donor's gifts with a fresh session cookie for `email`.
pub(super) fn signed_in(state: &State, email: &str, lang: &str) -> HttpResponse {
    let now = chrono::Utc::now().naive_utc();
    let token = lookup::session_token(state.config.jwt_secret.bytes(), email, now);
    let max_age = lookup::SESSION_TTL.num_seconds();
    let secure = if secure(state) { "; Secure" } else { "" };
    let mut resp = see_other(&format!("/receipts/gifts?lang={lang}"));
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/receipts; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The session token and its address, if the request carries a live one.
pub(super) fn session(state: &State, req: &HttpRequest) -> Option<(String, String)> {
    let cookies = req.headers().get(header::COOKIE)?.to_str().ok()?;
    let token = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.to_owned())?;
    let now = chrono::Utc::now().naive_utc();
    let email = lookup::session_email(state.config.jwt_secret.bytes(), &token, now)?;
    Some((token, email))
}

/// The session of a form post: a live cookie and the form token made for it.
pub(super) fn form_session(
    state: &State,
    req: &HttpRequest,
    form_token: &str,
) -> Result<(String, String), AppError> {
    let forbidden = || AppError::new(ErrorCode::Forbidden, "sign in again to do this");
    let (token, email) = session(state, req).ok_or_else(forbidden)?;
    if lookup::form_token(state.config.jwt_secret.bytes(), &token) != form_token {
        return Err(forbidden());
    }
    Ok((token, email))
}
