//! Stripe: `STRIPE_SECRET_KEY` and the settings that come with it.

use super::ConfigError;

/// The Stripe account, when card giving is configured.
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_...`.
    pub secret_key: String,
    /// `pk_...`, given to the page.
    pub publishable_key: String,
    /// `whsec_...`; several (comma-separated) while a secret is rotated.
    pub webhook_secrets: Vec<String>,
    /// Another API endpoint (tests use localstripe), without `/v1`.
    pub api_base: Option<String>,
    /// Where the page loads Stripe.js from.
    pub js_url: String,
    /// `acct_...` (`STRIPE_ACCOUNT_ID`): events naming another account are stored as foreign.
    pub account_id: Option<String>,
    /// `PAYMENT_METHODS` as written (default `card`), read again in the stored fund's
    /// currency by [`super::Config::adopt_fund`].
    pub payment_methods_text: String,
    /// The payment method types the donor page offers, checked against the fund's currency
    /// ([`crate::domain::payment_methods::parse_enabled`]).
    pub payment_methods: Vec<String>,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("publishable_key", &self.publishable_key)
            .field("api_base", &self.api_base)
            .field("js_url", &self.js_url)
            .field("account_id", &self.account_id)
            .field("payment_methods", &self.payment_methods)
            .finish_non_exhaustive()
    }
}

impl StripeConfig {
    /// Reads `PAYMENT_METHODS` for a fund in `currency`.
    pub(super) fn enable_methods(&mut self, currency: &str) -> Result<(), ConfigError> {
        self.payment_methods =
            crate::domain::payment_methods::parse_enabled(&self.payment_methods_text, currency)
                .map_err(|e| ConfigError(format!("PAYMENT_METHODS: {e}")))?;
        Ok(())
    }

    /// `None` without `STRIPE_SECRET_KEY` (card giving unavailable); with it, the other
    /// `STRIPE_*` settings it needs.
    pub(super) fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<StripeConfig>, ConfigError> {
        Ok(match var("STRIPE_SECRET_KEY") {
            None => None,
            Some(secret_key) => {
                let need = |key: &str| {
                    var(key).ok_or_else(|| {
                        ConfigError(format!("{key} is required when STRIPE_SECRET_KEY is set"))
                    })
                };
                let webhook_secrets: Vec<String> = need("STRIPE_WEBHOOK_SECRET")?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                Some(StripeConfig {
                    secret_key,
                    publishable_key: need("STRIPE_PUBLISHABLE_KEY")?,
                    webhook_secrets,
                    api_base: var("STRIPE_API_BASE"),
                    js_url: var("STRIPE_JS_URL")
                        .unwrap_or_else(|| "https://js.stripe.com/v3/".into()),
                    account_id: var("STRIPE_ACCOUNT_ID")
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty()),
                    payment_methods_text: var("PAYMENT_METHODS").unwrap_or_default(),
                    payment_methods: Vec::new(),
                })
            }
        })
    }
}
