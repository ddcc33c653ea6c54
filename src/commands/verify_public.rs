//! `crowdledger verify --public URL`: checks a fund's ledger from its public pages alone, as
//! any donor can, without the database: every version 2 entry's hash recomputed from its
//! public fields, every entry's link to the one before, raised and the money paid out
//! recomputed entry by entry, and the head the server names.

use anyhow::Context;

use crate::domain::GENESIS_HASH;
use crate::reports::public::HashedEntry;

/// Entries per page asked.
const PAGE: usize = 500;

/// What the check found.
#[derive(Debug, Default)]
struct Found {
    recomputed: u64,
    linked_only: u64,
    raised: i64,
    disbursed: i64,
    first_bad: Option<i64>,
    problems: Vec<String>,
}

impl Found {
    fn bad(&mut self, seq: i64, problem: String) {
        self.first_bad.get_or_insert(seq);
        self.problems.push(problem);
    }

    fn check(&mut self, e: &HashedEntry, prev: Option<&HashedEntry>) {
        let (want_seq, want_prev) =
            prev.map_or((1, GENESIS_HASH), |p| (p.seq + 1, p.hash.as_str()));
        if e.seq != want_seq {
            self.bad(
                e.seq,
                format!(
                    "entry {}: expected seq {want_seq} (an entry is missing)",
                    e.seq
                ),
            );
        }
        if e.prev_hash != want_prev {
            self.bad(
                e.seq,
                format!(
                    "entry {}: prev_hash is not the hash of the entry before it",
                    e.seq
                ),
            );
        }
        match e.hash_version {
            1 if prev.is_some_and(|p| p.hash_version >= 2) => {
                self.bad(
                    e.seq,
                    format!("entry {}: hash version went back to 1", e.seq),
                );
            }
            1 => self.linked_only += 1,
            _ => match e.recomputed() {
                Some(h) if h == e.hash => self.recomputed += 1,
                _ => self.bad(
                    e.seq,
                    format!(
                        "entry {}: hash does not match its public fields (altered)",
                        e.seq
                    ),
                ),
            },
        }
        self.raised += e.amount_minor;
        if e.raised_after_minor != self.raised {
            self.bad(
                e.seq,
                format!(
                    "entry {}: raised_after {} but the entries before it sum to {}",
                    e.seq, e.raised_after_minor, self.raised
                ),
            );
            self.raised = e.raised_after_minor;
        }
        let moved = e.disbursed_after_minor - self.disbursed;
        if !crate::domain::moves_paid_out_rightly(&e.kind, e.amount_minor, moved) {
            self.bad(
                e.seq,
                format!(
                    "entry {}: a {} entry moves the money paid out by {moved}",
                    e.seq, e.kind
                ),
            );
        }
        self.disbursed = e.disbursed_after_minor;
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        let resp = client
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // Rate limited like any scraper: wait as told.
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(std::time::Duration::from_secs(wait.clamp(1, 60))).await;
            continue;
        }
        let resp = resp
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        return resp
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"));
    }
}

async fn run(base: &str) -> anyhow::Result<bool> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::new();
    let mut found = Found::default();
    let mut prev: Option<HashedEntry> = None;
    loop {
        let after = prev.as_ref().map_or(0, |p| p.seq);
        let page = get_json(
            &client,
            &format!("{base}/api/public/ledger?after={after}&limit={PAGE}"),
        )
        .await?;
        let entries: Vec<HashedEntry> = serde_json::from_value(page["entries"].clone())
            .context("the page's entries are not public ledger entries")?;
        if entries.is_empty() {
            break;
        }
        for e in entries {
            found.check(&e, prev.as_ref());
            prev = Some(e);
        }
        if page["next_after"].is_null() {
            break;
        }
    }
    let Some(last) = prev else {
        println!("public ledger verification FAILED: the ledger has no entries");
        return Ok(false);
    };
    let head = get_json(&client, &format!("{base}/api/public/head")).await?;
    if head["seq"].as_i64() == Some(last.seq) && head["hash"].as_str() != Some(last.hash.as_str()) {
        found.bad(
            last.seq,
            format!("the head names another hash for entry {}", last.seq),
        );
    }
    if found.problems.is_empty() {
        println!(
            "public ledger verified: head seq {} hash {}; {} entries recomputed from their public \
             fields, {} written before the public ledger (version 1) checked by their links; \
             raised {} and paid out {} minor units",
            last.seq, last.hash, found.recomputed, found.linked_only, found.raised, found.disbursed
        );
        return Ok(true);
    }
    println!(
        "public ledger verification FAILED: first bad entry is seq {}",
        found.first_bad.unwrap_or(0)
    );
    for p in &found.problems {
        println!("  {p}");
    }
    Ok(false)
}

/// Checks the public ledger at `url`; false (exit 1) if anything does not add up.
pub fn verify_public(url: &str) -> anyhow::Result<bool> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(url))
}
