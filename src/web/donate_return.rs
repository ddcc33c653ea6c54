//! `GET /donate/return`: where Stripe sends a donor back after a payment that left the page
//! (Alipay's authorisation, a bank's), with `payment_intent`, `payment_intent_client_secret`
//! and `redirect_status` added to the address the page gave (`donation`, `token`, `lang`).
//! The page says what the ledger knows of the donation, in the donor's language, from the
//! same status the donor page polls; it is rendered on the server (no script) and refreshes
//! itself while the outcome is not known yet.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{language, render};
use crate::error::{AppError, ErrorCode};
use crate::http::State;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/donate/return", web::get().to(donate_return));
}

#[derive(Deserialize)]
struct ReturnQuery {
    donation: Option<i64>,
    token: Option<String>,
    /// Stripe's word on the redirect: `succeeded`, `processing`, `failed`, ...
    redirect_status: Option<String>,
}

/// What the page shows: the donation's status, or `failed` when Stripe says the redirect
/// failed and the ledger has heard nothing yet.
fn shown(status: &str, redirect_status: Option<&str>) -> &'static str {
    match (status, redirect_status) {
        ("succeeded", _) => "succeeded",
        ("processing", _) => "processing",
        ("failed" | "canceled", _) | ("pending", Some("failed")) => "failed",
        _ => "waiting",
    }
}

async fn donate_return(
    state: State,
    req: HttpRequest,
    q: web::Query<ReturnQuery>,
) -> Result<HttpResponse, AppError> {
    let lang = language(&req);
    let q = q.into_inner();
    let status = match (q.donation, q.token.as_deref()) {
        (Some(id), Some(token)) => match crate::http::payment_status(&state, id, token).await {
            Ok(s) => Some(s),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let (shown, keep_query) = match (&status, q.donation, q.token.as_deref()) {
        (Some(s), Some(id), Some(token)) if token.bytes().all(|b| b.is_ascii_hexdigit()) => (
            shown(s, q.redirect_status.as_deref()),
            format!("donation={id}&token={token}"),
        ),
        _ => ("unknown", String::new()),
    };
    let mut page = render(
        "donate_return.html",
        lang,
        json!({
            "shown": shown,
            // While the outcome is not known, the page asks again every few seconds.
            "refresh": shown == "waiting",
            "keep_query": keep_query,
        }),
    )?;
    if shown == "unknown" {
        *page.status_mut() = actix_web::http::StatusCode::NOT_FOUND;
    }
    page.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ledger_decides_and_stripe_only_says_a_redirect_failed() {
        use super::shown;
        assert_eq!(shown("succeeded", Some("failed")), "succeeded");
        assert_eq!(shown("pending", Some("succeeded")), "waiting");
        assert_eq!(shown("pending", Some("failed")), "failed");
        assert_eq!(shown("processing", None), "processing");
        assert_eq!(shown("canceled", None), "failed");
    }
}
