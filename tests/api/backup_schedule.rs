//! Scheduled backups (`BACKUP_DIR`, `BACKUP_EVERY`, `BACKUP_KEEP`, issue 22): the server takes
//! them itself while gifts come in, keeps the newest few, each restores and verifies; a backup
//! that fails is retried and never holds up a gift; `/metrics` shows the last one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crowdledger::auth::Role;
use crowdledger::backup::schedule::scheduled_backups;
use crowdledger::db::schema;
use diesel::prelude::*;

use crate::helpers::{TestApp, fresh_database, spawn_app_with};
use crate::metrics::{TOKEN, get, parse, value};

/// `/metrics` series `name` (no labels).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let url = format!("{}/metrics", app.addr);
    let text = get(app, &url, Some(TOKEN))
        .await
        .text()
        .await
        .expect("metrics text");
    value(&parse(&text), name, &[]).unwrap_or_else(|| panic!("{name} in {text}"))
}

/// A server backing itself up into `dir` every second, keeping two.
async fn backing_up(dir: &Path) -> TestApp {
    let dir = dir.display().to_string();
    spawn_app_with(&[
        ("RATE_LIMIT_DONATIONS", "off"),
        ("METRICS_TOKEN", TOKEN),
        ("BACKUP_DIR", &dir),
        ("BACKUP_EVERY", "1s"),
        ("BACKUP_KEEP", "2"),
    ])
    .await
}

fn names(dir: &Path) -> Vec<PathBuf> {
    scheduled_backups(dir)
        .expect("list backups")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The head (seq) a backup file's header names.
fn header_seq(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).expect("read backup");
    let header: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("header line")).expect("header json");
    header["head_seq"].as_i64().expect("head_seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_backs_itself_up_keeps_the_newest_and_each_restores() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("backups");
    let app = backing_up(&dir).await;
    let token = app.token(Role::Admin).await;
    // Gifts keep coming while the schedule runs; every one is answered.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "backups seen: {seen:?}");
        app.record_gifts(&token, &["1.00", "2.50"]).await;
        seen.extend(names(&dir));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fund_seq: i64 = schema::funds::table
        .select(schema::funds::ledger_seq)
        .first(&mut app.conn())
        .expect("fund");
    // Once gifts stop, the next backup ends at the fund's head.
    let deadline = Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let all = names(&dir);
        if let Some(last) = all.last().filter(|p| header_seq(p) == fund_seq) {
            break last.clone();
        }
        assert!(Instant::now() < deadline, "no backup at seq {fund_seq}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(names(&dir).len() <= 2, "kept: {:?}", names(&dir));
    assert!(metric(&app, "crowdledger_backup_last_success_timestamp_seconds").await > 0.0);
    let last_seq = metric(&app, "crowdledger_backup_last_head_seq").await;
    assert!(last_seq >= 1.0 && last_seq <= fund_seq as f64, "{last_seq}");
    assert_eq!(metric(&app, "crowdledger_backup_failures_total").await, 0.0);
    // The kept backup restores, verified, into an empty database.
    let (target, _keep) = fresh_database();
    let (ok, text) = crate::backup::restore(&app, &target, &newest);
    assert!(ok, "restore: {text}");
    assert!(text.contains(&format!("seq {fund_seq}")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_is_retried_and_never_holds_up_a_gift() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // BACKUP_DIR names a file: every backup fails until it is a directory.
    let dir = tmp.path().join("backups");
    std::fs::write(&dir, b"not a directory").expect("block the directory");
    let app = backing_up(&dir).await;
    let token = app.token(Role::Admin).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&app, "crowdledger_backup_failures_total").await < 2.0 {
        assert!(Instant::now() < deadline, "no failed backup counted");
        app.record_gifts(&token, &["3.00"]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&app, "crowdledger_backup_last_success_timestamp_seconds").await,
        0.0
    );
    let fund = app.fund().await;
    assert!(fund["donation_count"].as_i64() >= Some(1), "{fund}");
    // The disk is fixed: the retry succeeds without a restart.
    std::fs::remove_file(&dir).expect("unblock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while names(&dir).is_empty() {
        assert!(Instant::now() < deadline, "the backup was not retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(metric(&app, "crowdledger_backup_last_success_timestamp_seconds").await > 0.0);
    assert!(app.verify().is_ok());
}
