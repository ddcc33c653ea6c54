//! `crowdledger backup` while the server takes gifts, and `crowdledger restore` into an empty
//! database: verified before it is kept, refused for a corrupt file, a file that is not a
//! backup, and a database that already holds a fund.

use std::collections::BTreeSet;
use std::path::Path;

use crowdledger::auth::Role;
use crowdledger::config::DatabaseUrl;
use crowdledger::db::{self, schema};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, fresh_database, spawn_app_with, url_text};

const GIFTS: usize = 2_000;
const CLIENTS: usize = 8;

/// Runs `backup --out path` on the database `url`; returns the head it printed.
fn backup_cli(url: &str, path: &Path) -> (i64, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdledger"))
        .args(["backup", "--out", &path.display().to_string()])
        .env("DATABASE_URL", url)
        .output()
        .expect("run crowdledger backup");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "backup failed: {out:?}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "seq");
    let at = at.unwrap_or_else(|| panic!("head printed: {stdout}"));
    assert_eq!(words[at + 2], "hash", "{stdout}");
    let seq = words[at + 1].parse().expect("seq is a number");
    (seq, words[at + 3].to_owned())
}

/// Runs `restore --from path` into `target`; returns (success, stdout + stderr).
pub(crate) fn restore(app: &TestApp, target: &DatabaseUrl, path: &Path) -> (bool, String) {
    let out = app.cli(
        &["restore", "--from", &path.display().to_string()],
        &[("DATABASE_URL", &url_text(target))],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Rows of the ledger tables in `target` (zero where the tables do not exist yet).
fn rows_in(target: &DatabaseUrl) -> i64 {
    let mut conn = db::establish(target).expect("target reachable");
    let funds: i64 = schema::funds::table
        .count()
        .get_result(&mut conn)
        .unwrap_or(0);
    let donations: i64 = schema::donations::table
        .count()
        .get_result(&mut conn)
        .unwrap_or(0);
    let entries: i64 = schema::ledger_entries::table
        .count()
        .get_result(&mut conn)
        .unwrap_or(0);
    funds + donations + entries
}

/// A small fund: a period, a user, a few gifts; returns the app and a backup of it.
async fn small_fund(dir: &Path) -> (TestApp, std::path::PathBuf) {
    let app = spawn_app_with(&[("RATE_LIMIT_DONATIONS", "off")]).await;
    let token = app.token(Role::Admin).await;
    let resp = app
        .add_period(
            &token,
            "August 2020",
            "2020-08-01",
            "2020-08-31",
            "600000.00",
        )
        .await;
    assert_eq!(resp.status(), 201, "period added");
    app.record_gifts(&token, &["10.00", "25.50", "1000.00"])
        .await;
    let path = dir.join("fund.backup");
    backup_cli(&app.database_url(), &path);
    (app, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_mid_burst_holds_exactly_the_gifts_committed_before_its_head() {
    let app = spawn_app_with(&[("RATE_LIMIT_DONATIONS", "off")]).await;
    let token = app.token(Role::Treasurer).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mid-burst.backup");

    // Half the clients give without pause; the other half give half their gifts, then wait
    // for the backup to finish before the rest, so the burst surely goes on past its head.
    let (backup_done, done_rx) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = app.client.clone();
        let (addr, token) = (app.addr.clone(), token.clone());
        let mut done_rx = done_rx.clone();
        clients.spawn(async move {
            for i in 0..GIFTS / CLIENTS {
                if c % 2 == 1 && i == GIFTS / CLIENTS / 2 {
                    done_rx.wait_for(|done| *done).await.expect("backup signal");
                }
                let amount = format!("{}.{:02}", 1 + c, i % 100);
                let resp = client
                    .post(format!("{addr}/api/donations/offline"))
                    .bearer_auth(&token)
                    .json(&crate::helpers::gift(&amount))
                    .send()
                    .await
                    .expect("offline request");
                assert_eq!(resp.status(), 201, "gift {c}/{i}");
            }
        });
    }
    // Back up once a quarter of the burst is in, while the clients keep giving.
    app.wait_for_fund(|f| f["donation_count"].as_i64().unwrap_or(0) >= (GIFTS / 4) as i64)
        .await;
    let started = std::time::Instant::now();
    let (seq, hash) = {
        let cli_path = path.clone();
        let url = app.database_url();
        tokio::task::spawn_blocking(move || backup_cli(&url, &cli_path))
            .await
            .expect("backup task")
    };
    let took = started.elapsed();
    backup_done.send(true).expect("clients listening");
    while let Some(done) = clients.join_next().await {
        done.expect("client finished");
    }

    let mut source = app.conn();
    let last_seq: i64 = schema::ledger_entries::table
        .select(diesel::dsl::max(schema::ledger_entries::seq))
        .first::<Option<i64>>(&mut source)
        .expect("max seq")
        .expect("entries");
    assert!(
        seq < last_seq,
        "the backup (head {seq}) was taken before the burst ended ({last_seq})"
    );
    let head_hash: String = schema::ledger_entries::table
        .find(seq)
        .select(schema::ledger_entries::hash)
        .first(&mut source)
        .expect("head entry");
    assert_eq!(hash, head_hash, "the printed hash is entry {seq}'s");
    let before_head: BTreeSet<i64> = schema::ledger_entries::table
        .filter(schema::ledger_entries::seq.le(seq))
        .filter(schema::ledger_entries::donation_id.is_not_null())
        .select(schema::ledger_entries::donation_id.assume_not_null())
        .load(&mut source)
        .expect("donations before the head")
        .into_iter()
        .collect();
    assert!(before_head.len() >= GIFTS / 4 && before_head.len() < GIFTS);

    let (target, _keep) = fresh_database();
    let (ok, text) = restore(&app, &target, &path);
    assert!(ok, "restore failed: {text}");
    assert!(
        text.contains(&format!("head seq {seq} hash {hash}")),
        "{text}"
    );
    let mut restored = db::establish(&target).expect("target");
    let report = crowdledger::ledger::verify::verify(&mut restored).expect("verify runs");
    assert!(
        report.is_ok(),
        "restored copy verifies: {:?}",
        report.problems
    );
    let restored_ids: BTreeSet<i64> = schema::donations::table
        .select(schema::donations::id)
        .load(&mut restored)
        .expect("restored donations")
        .into_iter()
        .collect();
    assert_eq!(
        restored_ids, before_head,
        "the copy holds exactly the gifts at or before its head"
    );
    let (restored_seq, restored_head): (i64, String) = schema::funds::table
        .select((schema::funds::ledger_seq, schema::funds::ledger_head))
        .first(&mut restored)
        .expect("restored fund");
    assert_eq!((restored_seq, restored_head), (seq, hash));
    // The figure RELIABILITY.md quotes.
    eprintln!(
        "backup mid-burst: head seq {seq} of {last_seq} entries at the end, {} gifts in the copy \
         of {GIFTS}, backup took {} ms, restored copy verified",
        before_head.len(),
        took.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_fund_takes_new_gifts_after_the_restored_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, path) = small_fund(dir.path()).await;
    let (target, keep) = fresh_database();
    let (ok, text) = restore(&app, &target, &path);
    assert!(ok, "restore failed: {text}");
    // The restored database serves: new rows take ids after the restored ones (sequences).
    let restored = crate::helpers::spawn_on(target, keep, "whsec_restored".into(), &[], None).await;
    // The copied admins keep their second factor.
    restored.carry_second_factors(&app);
    let token = restored.token(Role::Admin).await;
    let resp = restored
        .add_period(&token, "September 2020", "2020-09-01", "2020-09-30", "1.00")
        .await;
    assert_eq!(resp.status(), 201, "a new period after the restored one");
    restored.record_gifts(&token, &["5.00"]).await;
    let fund = restored.fund().await;
    assert_eq!(fund["donation_count"], 4, "{fund}");
    assert_eq!(fund["raised"], "1040.50", "{fund}");
    assert!(restored.verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_corrupt_backup_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, path) = small_fund(dir.path()).await;
    let good = std::fs::read_to_string(&path).expect("backup readable");

    // One byte flipped: a donation's amount 1000.00 becomes 9000.00.
    let flipped = good.replacen("\"amount_minor\":100000", "\"amount_minor\":900000", 1);
    assert_ne!(flipped, good, "the backup holds the 1000.00 gift");
    let bad = dir.path().join("flipped.backup");
    std::fs::write(&bad, &flipped).expect("write");
    let (target, _keep) = fresh_database();
    let (ok, text) = restore(&app, &target, &bad);
    assert!(!ok, "a corrupt backup is refused");
    assert!(text.contains("checksum does not match"), "{text}");
    assert_eq!(rows_in(&target), 0, "nothing written");

    // The same change with the checksum made to match: the ledger's checks refuse it.
    let mut lines: Vec<&str> = flipped.lines().collect();
    lines.pop();
    let mut digest = Sha256::new();
    for l in &lines {
        digest.update(l.as_bytes());
        digest.update(b"\n");
    }
    let trailer = serde_json::json!({ "end": {
        "rows": lines.len() - 1, "sha256": hex::encode(digest.finalize()) } });
    let forged = format!("{}\n{trailer}\n", lines.join("\n"));
    std::fs::write(&bad, forged).expect("write");
    let (ok, text) = restore(&app, &target, &bad);
    assert!(!ok, "a backup that does not verify is refused");
    assert!(text.contains("does not verify"), "{text}");
    assert!(text.contains("first bad entry"), "names the entry: {text}");
    assert!(text.contains("nothing was restored"), "{text}");
    assert_eq!(rows_in(&target), 0, "nothing written");

    // Cut short: refused too.
    let cut = &good[..good.len() / 2];
    std::fs::write(&bad, cut).expect("write");
    let (ok, text) = restore(&app, &target, &bad);
    assert!(
        !ok && rows_in(&target) == 0,
        "a truncated backup is refused: {text}"
    );

    // And the target is still usable: the good backup restores into it.
    let (ok, text) = restore(&app, &target, &path);
    assert!(ok, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flipped_byte_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, path) = small_fund(dir.path()).await;
    let good = std::fs::read(&path).expect("backup readable");
    let (target, _keep) = fresh_database();
    let bad = dir.path().join("flipped.backup");
    // Sixty positions spread over the whole file: header, rows of every table, trailer.
    const TRIES: usize = 60;
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for k in 0..TRIES {
        let at = k * (good.len() - 1) / (TRIES - 1);
        let mut flipped = good.clone();
        flipped[at] ^= 0x01;
        std::fs::write(&bad, &flipped).expect("write");
        let (ok, text) = restore(&app, &target, &bad);
        assert!(!ok, "byte {at} flipped was restored: {text}");
        assert_eq!(rows_in(&target), 0, "byte {at} flipped wrote rows");
        // Each refusal says why, in one of these words.
        let reason = [
            "checksum does not match",
            "not a crowdledger backup",
            "not JSON",
            "does not fit the table",
            "unknown table",
            "tables are not this version's",
            "without its trailer",
        ]
        .into_iter()
        .find(|r| text.contains(r))
        .unwrap_or_else(|| panic!("byte {at}: an unclear refusal: {text}"));
        *reasons.entry(reason.to_owned()).or_default() += 1;
    }
    eprintln!(
        "restore corruption: {TRIES} of {TRIES} single-byte flips in a {}-byte backup refused, \
         nothing written; by reason {reasons:?}",
        good.len()
    );
    let (ok, text) = restore(&app, &target, &path);
    assert!(ok, "the good backup still restores: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_file_that_is_not_a_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _path) = small_fund(dir.path()).await;
    let (target, _keep) = fresh_database();
    for (name, body) in [
        ("empty", ""),
        ("csv", "id,amount\n1,10.00\n"),
        (
            "other json",
            "{\"format\":\"something-else\",\"version\":1}\n",
        ),
    ] {
        let file = dir.path().join("not-a-backup");
        std::fs::write(&file, body).expect("write");
        let (ok, text) = restore(&app, &target, &file);
        assert!(!ok, "{name}: refused");
        assert!(
            text.contains("is not a crowdledger backup"),
            "{name}: {text}"
        );
        assert_eq!(rows_in(&target), 0, "{name}: nothing written");
    }
    let (ok, text) = restore(&app, &target, &dir.path().join("missing"));
    assert!(!ok && text.contains("opening"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_database_that_holds_a_fund() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, path) = small_fund(dir.path()).await;
    let before = app.count("ledger_entries");
    let (ok, text) = restore(&app, &app.db_url, &path);
    assert!(!ok, "refused");
    assert!(text.contains("already holds a fund"), "{text}");
    assert_eq!(app.count("ledger_entries"), before, "nothing written");
    assert!(app.verify().is_ok());
}

/// An empty database of the engine this run does NOT use.
pub(crate) fn other_engine_database() -> (DatabaseUrl, Option<tempfile::TempDir>) {
    if crate::helpers::engine_is_postgres() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("moved.db");
        (DatabaseUrl::Sqlite(path.display().to_string()), Some(dir))
    } else {
        use diesel::connection::SimpleConnection;
        let base = crate::helpers::postgres_base();
        let name = format!("cl_backup_move_{}", rand::random::<u32>());
        let mut admin = PgConnection::establish(&base).expect("PostgreSQL reachable for tests");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let (prefix, _) = base.rsplit_once('/').expect("database in url");
        (DatabaseUrl::Postgres(format!("{prefix}/{name}")), None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_the_other_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, path) = small_fund(dir.path()).await;
    let (target, _keep) = other_engine_database();
    let (ok, text) = restore(&app, &target, &path);
    assert!(ok, "restore into the other engine: {text}");
    let mut moved = db::establish(&target).expect("target");
    let report = crowdledger::ledger::verify::verify(&mut moved).expect("verify runs");
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.raised_minor, 103_550);
    assert_eq!(rows_in(&target), rows_in(&app.db_url));
}

/// Runs `copy --to target` on the app's database; returns (success, stdout + stderr).
pub(crate) fn copy_to(app: &TestApp, target: &str) -> (bool, String) {
    let out = app.cli(&["copy", "--to", target], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_the_fund_into_an_empty_database_of_the_other_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _path) = small_fund(dir.path()).await;
    let (target, _keep) = other_engine_database();
    let (ok, text) = copy_to(&app, &url_text(&target));
    assert!(ok, "copy: {text}");
    let mut source = app.conn();
    let (seq, hash): (i64, String) = schema::funds::table
        .select((schema::funds::ledger_seq, schema::funds::ledger_head))
        .first(&mut source)
        .expect("source fund");
    assert!(
        text.contains(&format!("source: head seq {seq} hash {hash}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("target: head seq {seq} hash {hash}")),
        "{text}"
    );
    let mut moved = db::establish(&target).expect("target");
    let report = crowdledger::ledger::verify::verify(&mut moved).expect("verify runs");
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(rows_in(&target), rows_in(&app.db_url));

    // Again: the target now holds a fund, so the copy is refused and changes nothing.
    let before = rows_in(&target);
    let (ok, text) = copy_to(&app, &url_text(&target));
    assert!(!ok && text.contains("already holds a fund"), "{text}");
    assert_eq!(rows_in(&target), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_refuses_an_unreachable_or_unusable_target() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _path) = small_fund(dir.path()).await;
    let (ok, text) = copy_to(&app, "postgres://postgres@127.0.0.1:1/nowhere");
    assert!(
        !ok && text.contains("connecting to the target database"),
        "{text}"
    );
    let (ok, text) = copy_to(&app, "mysql://somewhere/fund");
    assert!(!ok && text.contains("--to"), "{text}");
    let (ok, text) = copy_to(&app, &app.database_url());
    assert!(!ok && text.contains("being copied"), "{text}");
    assert!(app.verify().is_ok(), "the source is untouched");
}
