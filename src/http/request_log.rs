//! One log line per request, at info: its id, the matched route pattern, the status and the
//! latency. The raw path and the query string are never logged (they can carry ids, tokens
//! or a donor's address); a request that matches no route is logged as `unmatched`.
//!
//! The id comes from the client's `X-Request-Id` when that is short and plain (so a proxy's
//! id follows the request through), otherwise it is made here; either way it is sent back in
//! the `X-Request-Id` response header and is on every event logged while the request runs.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;

use super::metrics::Metrics;

/// The request id header, read from clients and always answered.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen request id kept; a longer one is replaced.
const MAX_ID_LEN: usize = 64;

/// The client's id if it is at most [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`
/// (nothing a log reader or a header could misread), else a new random one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map_or_else(|| hex::encode(rand::random::<[u8; 16]>()), str::to_owned)
}

/// Runs `req` through `srv` inside a span carrying the request id, then logs the request line,
/// counts it in `metrics` (same route, status and latency) and adds `X-Request-Id` to the
/// answer (an error's answer too).
pub fn log_request<S, B>(
    req: ServiceRequest,
    srv: &S,
    metrics: Arc<Metrics>,
) -> impl std::future::Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    // Before routing: the pattern the path will match (the route reports it again after).
    let pattern = req.match_pattern();
    let span = tracing::info_span!("request", request_id = %id);
    let call = span.in_scope(|| srv.call(req));
    async move {
        let result = call.instrument(span).await;
        let took = started.elapsed();
        let latency_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let header = HeaderValue::from_str(&id).ok();
        // One line and one count per request, whether the service answered or failed.
        let record = |route: Option<&str>, status: u16| {
            let route = route.unwrap_or("unmatched");
            metrics.request(&method, route, status, took);
            tracing::info!(
                request_id = %id,
                %method,
                route = %route,
                status,
                latency_ms,
                "request"
            );
        };
        match result {
            Ok(res) => {
                let route = res.request().match_pattern().or(pattern);
                let mut res = res.map_into_boxed_body();
                let status = res.status().as_u16();
                record(route.as_deref(), status);
                if let Some(v) = header {
                    res.headers_mut().insert(REQUEST_ID, v);
                }
                Ok(res)
            }
            Err(err) => {
                let mut resp = err.error_response();
                record(pattern.as_deref(), resp.status().as_u16());
                if let Some(v) = header {
                    resp.headers_mut().insert(REQUEST_ID, v);
                }
                Err(actix_web::error::InternalError::from_response(err, resp).into())
            }
        }
    }
}
