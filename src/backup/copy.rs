//! `crowdledger copy --to URL`: the move from one database to another (typically the SQLite
//! a fund started on to the PostgreSQL it grows into): a backup and a restore, the same code.

use anyhow::{Context, bail};

use super::{Head, backup, open_empty_target, restore};
use crate::config::DatabaseUrl;

/// Copies the fund at `from` into the empty database `to`, verified there; returns the head on
/// both sides. The target is checked (reachable, migrated, holding no fund) before the source
/// is read, and the rows go through a private temporary backup file (memory stays flat),
/// removed afterwards.
pub fn copy(from: &DatabaseUrl, to: &DatabaseUrl) -> anyhow::Result<(Head, Head)> {
    if from == to {
        bail!("--to names the database being copied");
    }
    drop(open_empty_target(to)?);
    let tmp = std::env::temp_dir().join(format!(
        "crowdledger-copy-{}-{}.clbk",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = backup(from, &tmp)
        .context("reading the source database")
        .and_then(|source| Ok((source, restore(to, &tmp)?)));
    let _ = std::fs::remove_file(&tmp);
    let (source, target) = result?;
    if (source.seq, &source.hash) != (target.seq, &target.hash) {
        bail!("the copy ends at another head than the source (internal error)");
    }
    Ok((source, target))
}
