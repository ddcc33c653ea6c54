//! Outgoing email: `SMTP_URL`, `MAIL_FROM`, what receipts say about the association, retries.

use std::str::FromStr;

use super::{ConfigError, database::redact_url, parse_duration};

/// Outgoing email: where to send it and what receipts say about the association.
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://host:port`, `smtps://user:pass@host`; `None` logs mail and keeps it queued.
    pub smtp_url: Option<String>,
    /// The sender, e.g. `Legal Defense Fund <receipts@example.org>`.
    pub from: String,
    /// The association's name on receipts (defaults to the fund's name).
    pub association: Option<String>,
    /// The association's tax id, printed on receipts when set.
    pub tax_id: String,
    /// "No goods or services were provided" sentence, English.
    pub no_goods_en: String,
    /// The same sentence, Simplified Chinese.
    pub no_goods_zh: String,
    /// `TAX_STATUS`: what receipts, statements and the donor page say of tax deduction.
    pub tax_status: TaxStatus,
    /// Templates to use instead of the embedded ones.
    pub templates_dir: Option<std::path::PathBuf>,
    /// First retry delay; doubles per attempt up to `retry_max`, with jitter.
    pub retry_base: std::time::Duration,
    /// Longest retry delay (ten minutes by default): through an outage of any length a
    /// queued email is tried again about this often.
    pub retry_max: std::time::Duration,
    /// How long a claim holds an outbox row; renewed just before each send, so it must only
    /// exceed the time one message takes to send (two minutes by default).
    pub lease: std::time::Duration,
}

/// A mail setting that is a duration above zero, `default_secs` when unset.
fn mail_duration(
    var: &impl Fn(&str) -> Option<String>,
    key: &str,
    default_secs: u64,
) -> Result<std::time::Duration, ConfigError> {
    match var(key) {
        None => Ok(std::time::Duration::from_secs(default_secs)),
        Some(t) => parse_duration(&t)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ConfigError(format!("{key}: not a duration: {t:?} (e.g. 2s, 10m)"))),
    }
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp", &self.smtp_url.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("templates_dir", &self.templates_dir)
            .finish_non_exhaustive()
    }
}

/// The association's tax status (`TAX_STATUS`), for what its receipts must say (IRS rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaxStatus {
    /// Nothing is said about deduction (the default).
    #[default]
    None,
    /// A 501(c)(3) charity: receipts of 250 or more and year-end statements carry the "no goods
    /// or services" acknowledgement (IRC §170(f)(8)).
    Charity501c3,
    /// Gifts are not deductible: the donor page, every receipt and statement say so (IRC §6113).
    NotDeductible,
}

impl TaxStatus {
    /// The setting's value, as the templates see it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxStatus::None => "none",
            TaxStatus::Charity501c3 => "501c3",
            TaxStatus::NotDeductible => "not_deductible",
        }
    }

    fn parse(text: &str) -> Result<TaxStatus, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(TaxStatus::None),
            "501c3" => Ok(TaxStatus::Charity501c3),
            "not_deductible" => Ok(TaxStatus::NotDeductible),
            other => Err(ConfigError(format!(
                "TAX_STATUS: {other:?} is none of 501c3, not_deductible, none"
            ))),
        }
    }
}

impl MailConfig {
    /// Reads the mail settings; a `MAIL_FROM` that is not a mailbox is refused.
    pub(super) fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<MailConfig, ConfigError> {
        let mail = MailConfig {
            smtp_url: var("SMTP_URL"),
            from: var("MAIL_FROM")
                .unwrap_or_else(|| "Legal Defense Fund <receipts@localhost>".into()),
            association: var("ASSOCIATION_NAME"),
            tax_id: var("ASSOCIATION_TAX_ID").unwrap_or_default(),
            no_goods_en: var("RECEIPT_NO_GOODS_TEXT").unwrap_or_else(|| {
                "No goods or services were provided in exchange for this contribution.".into()
            }),
            no_goods_zh: var("RECEIPT_NO_GOODS_TEXT_ZH")
                .unwrap_or_else(|| "本次捐款并未换取任何商品或服务。".into()),
            tax_status: var("TAX_STATUS").map_or(Ok(TaxStatus::None), |t| TaxStatus::parse(&t))?,
            templates_dir: var("EMAIL_TEMPLATES_DIR").map(std::path::PathBuf::from),
            retry_base: mail_duration(var, "MAIL_RETRY_BASE", 2)?,
            retry_max: mail_duration(var, "MAIL_RETRY_MAX", 600)?,
            lease: mail_duration(var, "MAIL_LEASE", 120)?,
        };
        if mail.tax_status == TaxStatus::Charity501c3 && mail.tax_id.trim().is_empty() {
            return Err(ConfigError(
                "TAX_STATUS=501c3 needs ASSOCIATION_TAX_ID (the EIN donors' acknowledgements name)"
                    .into(),
            ));
        }
        if lettre::message::Mailbox::from_str(&mail.from).is_err() {
            return Err(ConfigError(format!(
                "MAIL_FROM is not a valid mailbox: {:?}",
                mail.from
            )));
        }
        Ok(mail)
    }
}
