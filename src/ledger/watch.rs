//! Notices changes made by other processes (another instance, a CLI command run while the
//! server is up) and has the writer republish the fund figures.
//!
//! Every writer, in any process, bumps the fund row's `version` in its batch; polling that
//! one row by primary key about once a second is cheap on both engines and misses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::prelude::*;

use super::LedgerWriter;
use super::ops::Refresh;
use super::state::FUND_ID;
use crate::db::Pool;
use crate::db::schema::funds;

/// How often the fund row's version is read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the watcher thread; it stops when the writer does or when `stop` is set.
pub fn spawn(pool: Pool, writer: LedgerWriter, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ledger-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(POLL_INTERVAL);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let stored = pool.get().ok().and_then(|mut c| {
                    funds::table
                        .find(FUND_ID)
                        .select(funds::version)
                        .first::<i64>(&mut c)
                        .ok()
                });
                let published = writer.snapshot().get().map(|s| s.version);
                if let Some(v) = stored
                    && Some(v) != published
                {
                    tracing::debug!(stored = v, ?published, "fund changed elsewhere; refreshing");
                    match writer.submit_blocking(Refresh) {
                        Err(e) if e.detail.contains("stopped") => break,
                        _ => {}
                    }
                }
            }
        })
        .map(|_| ())
}
