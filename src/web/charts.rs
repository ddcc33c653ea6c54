//! Server-rendered SVG charts for the admin page: daily donations and each period's coverage.
//! Every label is XML-escaped; the SVG has no script.

use actix_web::{HttpResponse, web};

use crate::auth::Role;
use crate::error::AppError;
use crate::http::{Staff, State, with_conn};
use crate::reports::{Filters, summary::summary};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/charts/daily.svg", web::get().to(daily))
        .route("/api/admin/charts/periods.svg", web::get().to(periods));
}

/// Escapes text for XML.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 240;

fn minor(m: &crate::money::Money, c: crate::money::Currency) -> i64 {
    c.to_minor(m.decimal()).unwrap_or(0)
}

/// Daily donations (the last 60 days with gifts), as SVG.
#[utoipa::path(
    get,
    path = "/api/admin/charts/daily.svg",
    operation_id = "chart_daily_svg",
    tag = "treasurer",
    security(("bearer" = [])),
    responses((status = 200, description = "An SVG image with no script", content_type = "image/svg+xml", body = String)),
)]
pub(crate) async fn daily(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let s = with_conn(&state, |c| summary(c, &Filters::default())).await?;
    let c = state.config.fund.currency;
    let days: Vec<_> = s.days.iter().rev().take(60).rev().collect();
    let max = days
        .iter()
        .map(|d| minor(&d.gross, c))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let bar = (WIDTH - 40) / n;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"Daily donations\"><title>Daily donations ({})</title>",
        xml(c.code())
    );
    for (i, d) in days.iter().enumerate() {
        let v = minor(&d.gross, c);
        let h = v * (HEIGHT - 50) / max;
        let x = 20 + i64::try_from(i).unwrap_or(0) * bar;
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"#1f5fa8\"><title>{} {} {}</title></rect>",
            HEIGHT - 30 - h,
            (bar - 2).max(1),
            xml(&d.date.to_string()),
            xml(&d.gross.to_string()),
            xml(c.code())
        ));
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        out.push_str(&format!(
            "<text x=\"20\" y=\"{}\" font-size=\"14\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"end\">{}</text>",
            HEIGHT - 10,
            xml(&first.date.to_string()),
            WIDTH - 20,
            HEIGHT - 10,
            xml(&last.date.to_string())
        ));
    }
    out.push_str("</svg>");
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(out))
}

/// Each period's coverage, as SVG.
#[utoipa::path(
    get,
    path = "/api/admin/charts/periods.svg",
    operation_id = "chart_periods_svg",
    tag = "treasurer",
    security(("bearer" = [])),
    responses((status = 200, description = "An SVG image with no script", content_type = "image/svg+xml", body = String)),
)]
pub(crate) async fn periods(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let s = with_conn(&state, |c| summary(c, &Filters::default())).await?;
    let c = state.config.fund.currency;
    let row = 36_i64;
    let height = 20 + row * i64::try_from(s.periods.len()).unwrap_or(0).max(1);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Coverage of each period\"><title>Coverage of each period</title>"
    );
    for (i, p) in s.periods.iter().enumerate() {
        let y = 10 + i64::try_from(i).unwrap_or(0) * row;
        let budget = minor(&p.budget, c).max(1);
        let covered = minor(&p.covered, c);
        let w = covered * 400 / budget;
        out.push_str(&format!(
            "<text x=\"10\" y=\"{}\" font-size=\"14\">{}</text><rect x=\"250\" y=\"{y}\" width=\"400\" height=\"22\" fill=\"#dde3ea\"/><rect x=\"250\" y=\"{y}\" width=\"{w}\" height=\"22\" fill=\"#1a7f37\"><title>{} / {} {}</title></rect>",
            y + 16,
            xml(&p.label),
            xml(&p.covered.to_string()),
            xml(&p.budget.to_string()),
            xml(c.code())
        ));
    }
    out.push_str("</svg>");
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(out))
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(xml("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
