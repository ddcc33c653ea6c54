//! What the CLI subcommands do; `main.rs` only parses arguments and calls these.

use std::io::Read;

use anyhow::{Context, bail};

use crate::auth::{Email, Role};
use crate::config::{Config, LogFormat};
use crate::db;
use crate::ledger::ops::{PeriodInput, SavePeriod};
use crate::ledger::verify::verify;
use crate::ledger::{BatchTuning, LedgerWriter};

mod reconcile;
pub mod users;
pub mod verify_public;

pub use reconcile::{reconcile, reconcile_payouts};

/// Logs to stderr in `format` (one JSON object per line for `LOG_FORMAT=json`); `RUST_LOG`
/// overrides the default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // Fields at the top level (not under "fields") and the current span's fields, so a
        // shipper can index `status`, `route` and `request_id` without unnesting.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// A connection to the configured database, migrated; `config` then speaks the stored fund's
/// currency (see [`crate::ledger::adopt_stored_fund`]).
pub fn connect(config: &mut Config) -> anyhow::Result<db::DbConn> {
    let mut conn = db::establish(&config.database_url).context("connecting to the database")?;
    db::migrate(&mut conn)?;
    crate::ledger::adopt_stored_fund(config, &mut conn)?;
    Ok(conn)
}

/// An in-process ledger writer for a command run beside (or instead of) the server; a running
/// server notices its commits within a second.
pub fn writer(config: &Config) -> anyhow::Result<LedgerWriter> {
    LedgerWriter::start(
        &config.database_url,
        &config.fund,
        BatchTuning::default(),
        None,
    )
}

/// `serve`: runs the service until SIGTERM or Ctrl-C, then stops it in order within
/// `SHUTDOWN_TIMEOUT` (see [`crate::http::Shutdown::graceful`]); an error if that took longer.
pub fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let within = config.shutdown_timeout;
        let running = crate::http::start(config)?;
        let writer = running.state.writer.clone();
        let shutdown = running.shutdown.clone();
        let mut server = actix_web::rt::spawn(running.server);
        let clean = tokio::select! {
            served = &mut server => {
                // The server ended without a signal: report its error, or stop the rest too.
                served??;
                shutdown.graceful(within, "server ended").await
            }
            signal = crate::http::stop_signal() => {
                let clean = shutdown.graceful(within, signal?).await;
                let _ = server.await;
                clean
            }
        };
        drop(running.state);
        let stats = writer.stats();
        let (batches, commands) = (
            stats.batches.load(std::sync::atomic::Ordering::Relaxed),
            stats.commands.load(std::sync::atomic::Ordering::Relaxed),
        );
        tracing::info!(
            batches,
            commands,
            per_batch = commands.checked_div(batches).unwrap_or(0),
            isolated_reruns = stats
                .isolated_reruns
                .load(std::sync::atomic::Ordering::Relaxed),
            locked_reruns = stats
                .locked_reruns
                .load(std::sync::atomic::Ordering::Relaxed),
            "ledger writer totals"
        );
        if !clean {
            bail!("the stop did not finish within SHUTDOWN_TIMEOUT ({within:?})");
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// `migrate`: applies pending migrations.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    let mut conn = db::establish(&config.database_url).context("connecting to the database")?;
    let ran = db::migrate(&mut conn)?;
    println!("{ran} migration(s) applied");
    Ok(())
}

/// `user add`: creates (or resets) a staff account; the password is read from stdin.
pub fn user_add(config: &mut Config, email: &str, role: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).context("--email is not a valid address")?;
    let role = Role::parse(role).context("--role must be admin or treasurer")?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let mut conn = connect(config)?;
    crate::auth::add_user(&mut conn, &email, role, password)
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!("{} is now a {}", email.as_str(), role.as_str());
    Ok(())
}

/// `period add`: adds a legal-fee period through the writer (a running server notices).
pub fn period_add(
    config: &mut Config,
    label: &str,
    from: &str,
    to: &str,
    budget: &str,
) -> anyhow::Result<()> {
    let starts_on =
        chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").context("--from must be YYYY-MM-DD")?;
    let ends_on =
        chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").context("--to must be YYYY-MM-DD")?;
    if ends_on < starts_on {
        bail!("--to is before --from");
    }
    // The budget is read in the stored fund's currency, known once connected.
    drop(connect(config)?);
    let budget_minor = config
        .fund
        .currency
        .parse_minor(budget)
        .map_err(|e| anyhow::anyhow!("--budget: {e}"))?;
    if budget_minor <= 0 || label.trim().is_empty() {
        bail!("--budget must be more than zero and --label not empty");
    }
    let writer = writer(config)?;
    let row = writer
        .submit_blocking(SavePeriod {
            id: None,
            period: PeriodInput {
                label: label.trim().to_owned(),
                starts_on,
                ends_on,
                budget_minor,
            },
            actor: "cli".into(),
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!(
        "period {} added: {} {}..{} budget {}",
        row.id,
        row.label,
        row.starts_on,
        row.ends_on,
        config.fund.currency.format(row.budget_minor)
    );
    Ok(())
}

/// `donor erase --email E [--confirm]`: without `--confirm`, says how many gifts would be
/// erased; with it, erases the donor's name and address (see `ledger::erase`).
pub fn donor_erase(config: &mut Config, email: &str, confirm: bool) -> anyhow::Result<()> {
    let email = crate::lookup::normalize(email);
    if crate::auth::Email::parse(&email).is_none() {
        bail!("--email is not an email address");
    }
    let mut conn = connect(config)?;
    let gifts = crate::lookup::gifts(&mut conn, &email, config.fund.currency, config.timezone)
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    drop(conn);
    if !confirm {
        println!(
            "{} gift(s) given with {email} would lose the donor's name and address (amounts, \
             dates and the ledger stay); run again with --confirm to erase",
            gifts.len()
        );
        return Ok(());
    }
    let erased = writer(config)?
        .submit_blocking(crate::ledger::erase::EraseDonor {
            email,
            actor: "cli".into(),
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!("erased the donor of {erased} gift(s)");
    Ok(())
}

/// `verify`: recomputes the chain and totals; `Ok(false)` when anything differs.
pub fn verify_ledger(config: &Config) -> anyhow::Result<bool> {
    let mut conn = db::establish(&config.database_url).context("connecting to the database")?;
    let report = verify(&mut conn).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    if report.is_ok() {
        println!(
            "ledger verified: {} entries, raised {} minor units, {} donations",
            report.entries, report.raised_minor, report.donation_count
        );
        return Ok(true);
    }
    match report.first_bad_seq {
        Some(seq) => println!("ledger verification FAILED: first bad entry is seq {seq}"),
        None => println!("ledger verification FAILED"),
    }
    for p in &report.problems {
        println!("  {p}");
    }
    Ok(false)
}

/// `export donations|periods|ledger`: the same CSV as the HTTP export, to stdout, with a
/// progress count on stderr when it is a terminal. Recorded in the audit log as `cli`.
pub fn export(
    config: &mut Config,
    kind: crate::reports::Export,
    filters: &crate::reports::Filters,
) -> anyhow::Result<()> {
    use std::io::Write;

    use crate::ledger::ops::RecordAudit;
    use crate::reports::{self, Export, csv_out::ChunkedCsv};

    let mut conn = connect(config)?;
    let writer = writer(config)?;
    writer
        .submit_blocking(RecordAudit {
            actor: "cli".into(),
            action: "report.export".into(),
            detail: serde_json::json!({ "export": kind.name(), "filters": filters }),
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let mut write_error = None;
    let mut out = ChunkedCsv::new(
        |chunk| match lock.write_all(&chunk) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        },
        filters.excel,
        64 * 1024,
    );
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |n: u64| {
        if tty {
            eprint!("\r{n} rows");
        }
    };
    let result = match kind {
        Export::Donations => {
            reports::donations::export(&mut conn, filters, &mut out, &mut progress)
        }
        Export::Ledger => reports::ledger::export(&mut conn, filters, &mut out, &mut progress),
        Export::Periods => reports::summary::export_periods(&mut conn, &mut out),
    };
    drop(out);
    if tty {
        eprintln!();
    }
    result.map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    if let Some(e) = write_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    lock.flush()?;
    Ok(())
}
