//! The baseline for `GET /api/fund`: the smallest actix-web server, built from the same
//! actix-web version and profile, answering a fixed JSON body of similar size.
//! `cargo run --release --example hello -- 127.0.0.1:18199`

use actix_web::{App, HttpResponse, HttpServer, web};

const BODY: &str = r#"{"name":"Legal Defense Fund","currency":"USD","target":"1000000.00","raised":"0.00","remaining":"1000000.00","donation_count":0,"unallocated":"0.00","intake":{"state":"open","accepting":true,"message":"","changed_at":"2026-11-29T00:00:00Z"},"periods":[]}"#;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18199".into());
    HttpServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(BODY)
            }),
        )
    })
    .bind(addr)?
    .run()
    .await
}
