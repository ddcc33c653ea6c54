//! The `crowdledger` command: parses arguments and calls into the library.

use clap::{Parser, Subcommand};
use crowdledger::commands;
use crowdledger::config::{Config, LogFormat};

/// A donation ledger for a legal-defense fund.
#[derive(Parser)]
#[command(name = "crowdledger", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Manage staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage legal-fee periods.
    Period {
        #[command(subcommand)]
        command: PeriodCommand,
    },
    /// Donors' data on request.
    Donor {
        #[command(subcommand)]
        command: DonorCommand,
    },
    /// Recompute the ledger's hash chain and totals; exit 1 if anything was altered.
    Verify {
        /// Check the public ledger served at this URL instead (no database needed): every
        /// hash and running total from the public pages alone.
        #[arg(long, value_name = "URL")]
        public: Option<String>,
    },
    /// Write a consistent copy of the database to FILE while the server keeps running; prints
    /// the ledger head (seq and hash) it was taken at.
    Backup {
        /// The backup file to write (replaced only when the backup is whole).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Read a backup into an EMPTY database, verify it, and keep it only if it verifies.
    Restore {
        /// The backup file written by `crowdledger backup`.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Copy this fund into an EMPTY database (e.g. SQLite to PostgreSQL), verified there;
    /// prints the head on both sides.
    Copy {
        /// The target database URL (postgres://... or sqlite://PATH).
        #[arg(long)]
        to: String,
    },
    /// Write a report as CSV to stdout (the same as the HTTP exports).
    Export {
        /// donations, periods or ledger.
        #[arg(value_parser = ["donations", "periods", "ledger"])]
        report: String,
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Start with a UTF-8 byte-order mark, for Excel.
        #[arg(long)]
        excel: bool,
    },
    /// Donor statements.
    Receipts {
        #[command(subcommand)]
        command: ReceiptsCommand,
    },
    /// Record card payments that succeeded at Stripe but whose webhook never arrived
    /// (`reconcile payouts`: match Stripe's payouts to the ledger instead).
    Reconcile {
        #[command(subcommand)]
        what: Option<ReconcileWhat>,
        /// Only PaymentIntents created on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user, or reset its password and role; the password is read from stdin.
    Add {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// admin or treasurer.
        #[arg(long, value_parser = ["admin", "treasurer"])]
        role: String,
    },
    /// List the staff accounts: role, disabled, second factor, open sessions.
    List,
    /// Change an account's role (its sessions end); the last active admin stays one.
    Role {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// admin or treasurer.
        #[arg(long, value_parser = ["admin", "treasurer"])]
        role: String,
    },
    /// Disable an account: it cannot log in and its sessions end.
    Disable {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// Remove a locked-out account's second factor (it enrols again at its next login).
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// End every session of an account.
    Logout {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum ReconcileWhat {
    /// Match each paid payout's balance transactions to the ledger and report the differences.
    Payouts {
        /// Only this payout (po_...); default: the paid payouts Stripe lists.
        #[arg(long)]
        payout: Option<String>,
    },
}

#[derive(Subcommand)]
enum ReceiptsCommand {
    /// One statement per donor with every gift of the year and the total.
    YearEnd {
        /// The calendar year, e.g. 2020.
        #[arg(long)]
        year: i32,
        /// Queue the statements for sending (each donor once per year, however often run).
        #[arg(long)]
        send: bool,
        /// Without --send: the folder to write them to (default ./year-end-YEAR).
        #[arg(long, conflicts_with = "send")]
        out: Option<std::path::PathBuf>,
        /// Send statements for a year that is not over yet (in FUND_TIMEZONE).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum DonorCommand {
    /// Erase a donor's name and address from every gift and email (amounts, dates and the
    /// ledger stay); without --confirm, only says how many gifts it would erase.
    Erase {
        /// The address the donor gave with.
        #[arg(long)]
        email: String,
        /// Erase for real.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Subcommand)]
enum PeriodCommand {
    /// Add a legal-fee period.
    Add {
        /// Label, e.g. "August 2020".
        #[arg(long)]
        label: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Fees owed for the period, e.g. 600000.00.
        #[arg(long)]
        budget: String,
    },
}

fn user_command(config: &mut Config, command: UserCommand) -> anyhow::Result<()> {
    use commands::users;
    match command {
        UserCommand::Add { email, role } => commands::user_add(config, &email, &role),
        UserCommand::List => users::list(config),
        UserCommand::Role { email, role } => users::update(config, &email, Some(&role), None),
        UserCommand::Disable { email } => users::update(config, &email, None, Some(true)),
        UserCommand::Enable { email } => users::update(config, &email, None, Some(false)),
        UserCommand::Reset2fa { email } => users::reset_2fa(config, &email),
        UserCommand::Logout { email } => users::logout(config, &email),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = Config::from_env();
    // A refused configuration is reported on stderr below, in plain text.
    commands::init_tracing(config.as_ref().map_or(LogFormat::Text, |c| c.log_format));
    let result = config.map_err(anyhow::Error::from).and_then(|mut config| {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => commands::serve(config).map(|()| true),
            Command::Migrate => commands::migrate(&config).map(|()| true),
            Command::User { command } => user_command(&mut config, command).map(|()| true),
            Command::Period {
                command:
                    PeriodCommand::Add {
                        label,
                        from,
                        to,
                        budget,
                    },
            } => commands::period_add(&mut config, &label, &from, &to, &budget).map(|()| true),
            Command::Donor {
                command: DonorCommand::Erase { email, confirm },
            } => commands::donor_erase(&mut config, &email, confirm).map(|()| true),
            Command::Verify { public: None } => commands::verify_ledger(&config),
            Command::Verify { public: Some(url) } => commands::verify_public::verify_public(&url),
            Command::Backup { out } => {
                crowdledger::backup::backup(&config.database_url, &out).map(|head| {
                    println!(
                        "backup written to {}: head seq {} hash {} ({} rows)",
                        out.display(),
                        head.seq,
                        head.hash,
                        head.rows
                    );
                    true
                })
            }
            Command::Copy { to } => crowdledger::config::DatabaseUrl::parse(&to)
                .map_err(|e| anyhow::anyhow!("--to: {}", e.0))
                .and_then(|to| crowdledger::backup::copy(&config.database_url, &to))
                .map(|(source, target)| {
                    println!("source: head seq {} hash {}", source.seq, source.hash);
                    println!(
                        "target: head seq {} hash {} ({} rows, verified)",
                        target.seq, target.hash, target.rows
                    );
                    true
                }),
            Command::Restore { from } => crowdledger::backup::restore(&config.database_url, &from)
                .map(|head| {
                    println!(
                        "restored and verified: head seq {} hash {} ({} rows)",
                        head.seq, head.hash, head.rows
                    );
                    true
                }),
            Command::Reconcile { what: None, since } => {
                commands::reconcile(&mut config, since).map(|_| true)
            }
            Command::Reconcile {
                what: Some(ReconcileWhat::Payouts { payout }),
                ..
            } => commands::reconcile_payouts(&mut config, payout.as_deref()),
            Command::Export {
                report,
                from,
                to,
                excel,
            } => {
                let kind = crowdledger::reports::Export::parse(&report)
                    .unwrap_or(crowdledger::reports::Export::Donations);
                let filters = crowdledger::reports::Filters {
                    from,
                    to,
                    excel,
                    ..Default::default()
                };
                commands::export(&mut config, kind, &filters).map(|()| true)
            }
            Command::Receipts {
                command:
                    ReceiptsCommand::YearEnd {
                        year,
                        send,
                        out,
                        force,
                    },
            } => crowdledger::receipts::year_end(&mut config, year, send, out.as_deref(), force)
                .map(|_| true),
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("crowdledger: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
