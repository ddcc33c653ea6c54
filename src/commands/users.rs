//! `user ...`: staff management from a shell, the same writer commands the admin API uses
//! (each audited with the actor `cli`). A running server refuses ended sessions within
//! `auth::sessions::STALENESS_BOUND`.

use anyhow::Context;

use super::{connect, writer};
use crate::auth::ops::{EndSessions, ResetSecondFactor, UpdateUser, list_users};
use crate::auth::{Account, Email, Role};
use crate::config::Config;

fn account(config: &mut Config, email: &str) -> anyhow::Result<Account> {
    let email = Email::parse(email).context("--email is not a valid address")?;
    let mut conn = connect(config)?;
    Account::find(&mut conn, email.as_str())
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?
        .with_context(|| format!("no staff account has the email {}", email.as_str()))
}

/// `user list`: every account, one a line.
pub fn list(config: &mut Config) -> anyhow::Result<()> {
    let mut conn = connect(config)?;
    let users = list_users(&mut conn).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    for u in users {
        println!(
            "{}\t{}\t{}\t2fa {}\t{} session(s)",
            u.email,
            u.role.as_str(),
            if u.disabled { "disabled" } else { "active" },
            if u.mfa_enabled { "on" } else { "off" },
            u.active_sessions
        );
    }
    Ok(())
}

/// `user role`, `user disable`, `user enable`: a change ends the account's sessions; the
/// last active admin stays.
pub fn update(
    config: &mut Config,
    email: &str,
    role: Option<&str>,
    disabled: Option<bool>,
) -> anyhow::Result<()> {
    let role = role
        .map(|r| Role::parse(r).context("--role must be admin or treasurer"))
        .transpose()?;
    let account = account(config, email)?;
    let (after, ended) = writer(config)?
        .submit_blocking(UpdateUser {
            id: account.id,
            role,
            disabled,
            by: "cli".into(),
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!(
        "{} is a {}{}; {} session(s) ended",
        after.email,
        after.role.as_str(),
        if after.disabled { " (disabled)" } else { "" },
        ended.len()
    );
    Ok(())
}

/// `user reset-2fa`: removes a locked-out account's second factor and ends its sessions.
pub fn reset_2fa(config: &mut Config, email: &str) -> anyhow::Result<()> {
    let account = account(config, email)?;
    let ended = writer(config)?
        .submit_blocking(ResetSecondFactor {
            email: account.email.clone(),
            by: "cli".into(),
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!(
        "{}: second factor removed, {} session(s) ended; it enrols again at its next login",
        account.email,
        ended.len()
    );
    Ok(())
}

/// `user logout`: ends every session of an account.
pub fn logout(config: &mut Config, email: &str) -> anyhow::Result<()> {
    let account = account(config, email)?;
    let ended = writer(config)?
        .submit_blocking(EndSessions {
            user_id: account.id,
            email: account.email.clone(),
            sid: None,
            by: "cli".into(),
            action: "auth.session_ended",
        })
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!("{}: {} session(s) ended", account.email, ended.len());
    Ok(())
}
