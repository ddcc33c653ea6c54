//! The failed ledger write of the refund tests: a real proxy in front of localstripe that
//! holds a refund's answer until the test has broken the database, and the outage itself.

use std::sync::OnceLock;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use crowdledger::config::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use tokio::sync::oneshot;

use crate::helpers::TestApp;

/// A real HTTP proxy in front of localstripe that, once armed, holds Stripe's answer to the
/// next refund until the test has broken the app's database, so the app learns of a refund
/// Stripe made exactly when it cannot record it.
pub(super) struct Proxy {
    pub(super) base: String,
    pub(super) state: web::Data<ProxyState>,
}

pub(super) struct ProxyState {
    pub(super) upstream: OnceLock<String>,
    client: reqwest::Client,
    /// Told when the refund was made; waited on before answering it.
    armed: tokio::sync::Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

async fn forward(req: HttpRequest, body: web::Bytes, st: web::Data<ProxyState>) -> HttpResponse {
    let upstream = st.upstream.get().expect("upstream set");
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
    let mut out = st
        .client
        .request(method, format!("{upstream}{}", req.uri()))
        .body(body.to_vec());
    for (name, value) in req.headers() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let resp = out.send().await.expect("localstripe answers");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let bytes = resp.bytes().await.expect("localstripe body");
    if req.method().as_str() == "POST" && req.path() == "/v1/refunds" {
        let armed = st.armed.lock().await.take();
        if let Some((made, go)) = armed {
            let _ = made.send(());
            let _ = go.await;
        }
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .content_type(content_type)
        .body(bytes)
}

impl Proxy {
    pub(super) fn start() -> Proxy {
        let state = web::Data::new(ProxyState {
            upstream: OnceLock::new(),
            client: reqwest::Client::new(),
            armed: tokio::sync::Mutex::new(None),
        });
        let data = state.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(forward))
        })
        .workers(1)
        .listen(listener)
        .expect("proxy listens")
        .run();
        tokio::spawn(server);
        Proxy {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Holds the next refund's answer: returns (told when made, release it).
    pub(super) async fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (made_tx, made_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        *self.state.armed.lock().await = Some((made_tx, go_rx));
        (made_rx, go_tx)
    }
}

/// The database refusing the app's writes for a while, as in an outage: on SQLite another
/// process holds the write lock (the writer gives up after its busy timeout); on PostgreSQL
/// the server ends the app's connections (the writer reconnects at its next batch).
pub(super) enum Outage {
    Sqlite(
        #[expect(dead_code, reason = "held: the open transaction is the lock")] SqliteConnection,
    ),
    Postgres,
}

pub(super) fn outage(app: &TestApp) -> Outage {
    match &app.db_url {
        DatabaseUrl::Sqlite(path) => {
            let mut c = SqliteConnection::establish(path).expect("sqlite");
            c.batch_execute("BEGIN IMMEDIATE")
                .expect("write lock taken");
            Outage::Sqlite(c)
        }
        DatabaseUrl::Postgres(url) => {
            let mut c = PgConnection::establish(url).expect("postgres");
            c.batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .expect("connections ended");
            Outage::Postgres
        }
    }
}
