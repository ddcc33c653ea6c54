//! Stopping the service in order (SIGTERM, Ctrl-C, or a test's `Shutdown`): stop accepting,
//! let the requests in flight finish (their writer commands commit), stop the writer after
//! its last batch, let the mailer and the payments worker finish what they are doing, all
//! within `SHUTDOWN_TIMEOUT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use tokio::task::JoinHandle;

use crate::error::{AppError, ErrorCode};
use crate::ledger::LedgerWriter;

/// Stops a started service; cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    pub(super) server: actix_web::dev::ServerHandle,
    /// The `METRICS_ADDR` listener, when configured.
    pub(super) metrics_server: Option<actix_web::dev::ServerHandle>,
    pub(super) watcher: Arc<AtomicBool>,
    /// Set once a stop began: every request from then on is refused with 503.
    pub(super) stopping: Arc<AtomicBool>,
    /// Tells the mailer and the payments worker to finish what they are doing and end.
    pub(super) tasks_stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The mailer's and the payments worker's tasks, awaited by a graceful stop.
    pub(super) tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    pub(super) writer: LedgerWriter,
}

impl Shutdown {
    /// Asks the server to stop now (connections are dropped), the watcher to end at its next
    /// tick, and the mailer and payments worker to end after what they are doing.
    pub fn shutdown(&self) {
        self.begin();
        self.watcher.store(true, Ordering::Relaxed);
        // The stop command is sent when called; the returned future only waits for it.
        drop(self.server.stop(false));
        if let Some(m) = &self.metrics_server {
            drop(m.stop(false));
        }
    }

    /// True once a stop began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn begin(&self) {
        self.stopping.store(true, Ordering::Release);
        self.tasks_stop.send_replace(true);
    }

    /// The graceful stop: refuses new requests (503, and the connection is closed), waits
    /// for those in flight, closes the writer once it answered every command already queued,
    /// and waits for the mailer and the payments worker to finish the message or follow-up
    /// under way. True when all of it ended within `within`; otherwise what is left is
    /// logged, and dropped when the process exits (a transaction not committed is rolled
    /// back by the database; an email not recorded as sent goes at the next start).
    /// `cause` (e.g. the signal's name) is logged once new requests are refused.
    pub async fn graceful(&self, within: Duration, cause: &str) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        self.begin();
        tracing::info!(cause, timeout = ?within, "stopping: new requests are refused");
        // Waits for the connections in flight, at most the server's `shutdown_timeout`.
        self.server.stop(true).await;
        if let Some(m) = &self.metrics_server {
            m.stop(true).await;
        }
        tracing::info!("stopping: HTTP server stopped");
        self.watcher.store(true, Ordering::Relaxed);
        self.writer.close();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut clean = self.writer.wait_stopped(left).await;
        if !clean {
            tracing::error!("stopping: the ledger writer did not stop within SHUTDOWN_TIMEOUT");
        }
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::error!(
                    "stopping: the mailer or the payments worker did not stop within SHUTDOWN_TIMEOUT"
                );
                clean = false;
            }
        }
        clean
    }
}

/// Resolves with the signal's name at the first SIGTERM or SIGINT (Ctrl-C).
pub async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| anyhow::anyhow!("listening for SIGTERM: {e}"))?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(|e| anyhow::anyhow!("listening for Ctrl-C: {e}")),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

/// Once a stop began, the request refused with 503 `unavailable` before anything is read or
/// written (its connection closes); otherwise the request back, to be served.
pub fn refused_when_stopping(
    stopping: &AtomicBool,
    req: ServiceRequest,
) -> Result<ServiceResponse<BoxBody>, ServiceRequest> {
    if !stopping.load(Ordering::Acquire) {
        return Err(req);
    }
    let mut resp = AppError::new(
        ErrorCode::Unavailable,
        "the service is stopping; nothing was recorded, please try again shortly",
    )
    .error_response();
    resp.head_mut().set_connection_type(ConnectionType::Close);
    Ok(req.into_response(resp))
}

/// Serves `call`; a response given once a stop began closes its connection, so keep-alive
/// clients do not hold the server's graceful stop open.
pub async fn closing_when_stopping<B, F>(
    stopping: Arc<AtomicBool>,
    call: F,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error>
where
    B: MessageBody + 'static,
    F: std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    let mut res = call.await?.map_into_boxed_body();
    if stopping.load(Ordering::Acquire) {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
