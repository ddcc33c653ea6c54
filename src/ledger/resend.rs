//! A donor resends their own receipt (`/receipts`): the original receipt's data queued again
//! through the outbox, at most [`RESENDS_PER_DAY`] times per gift per day (UTC), counted here in
//! the writer so two clicks at once cannot pass the limit.

use diesel::prelude::*;

use super::{Ctx, Op};
use crate::db::schema::{donations, outbox};
use crate::error::{AppError, ErrorCode};
use crate::lookup::RESENDS_PER_DAY;

/// Queues gift `donation_id`'s receipt again, for the donor signed in as `email`.
#[derive(Debug)]
pub struct ResendReceipt {
    /// The gift.
    pub donation_id: i64,
    /// The donor's address (normalized); the gift must have been given with it.
    pub email: String,
}

impl Op for ResendReceipt {
    type Output = i64;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<i64, AppError> {
        let not_yours = || {
            AppError::new(
                ErrorCode::NotFound,
                "no such gift for this address".to_owned(),
            )
        };
        let (email, locale): (Option<String>, String) = donations::table
            .find(self.donation_id)
            .select((donations::email, donations::locale))
            .first(cx.conn()?)
            .optional()?
            .ok_or_else(not_yours)?;
        if email.as_deref().map(crate::lookup::normalize) != Some(self.email.clone()) {
            return Err(not_yours());
        }
        let original: Option<String> = outbox::table
            .filter(outbox::dedupe_key.eq(super::ops::receipt_key(self.donation_id)))
            .select(outbox::payload)
            .first(cx.conn()?)
            .optional()?;
        let Some(payload) = original else {
            return Err(AppError::new(
                ErrorCode::NotFound,
                "this gift has no receipt (yet): it is not recorded as received",
            ));
        };
        let day = cx.now.date();
        let prefix = format!("receipt:{}:resend:{day}:", self.donation_id);
        let sent_today: i64 = outbox::table
            .filter(outbox::dedupe_key.like(format!("{prefix}%")))
            .count()
            .get_result(cx.conn()?)?;
        if sent_today >= RESENDS_PER_DAY {
            let midnight = (day + chrono::Days::new(1)).and_time(chrono::NaiveTime::MIN);
            let wait = (midnight - cx.now).to_std().unwrap_or_default();
            return Err(AppError::rate_limited(wait));
        }
        let payload: serde_json::Value =
            serde_json::from_str(&payload).map_err(AppError::internal)?;
        let n = sent_today + 1;
        cx.queue_email(
            "receipt",
            &format!("{prefix}{n}"),
            Some(self.donation_id),
            &locale,
            &payload,
        )?;
        cx.audit(
            "donor",
            "receipt.resend",
            &serde_json::json!({ "donation_id": self.donation_id, "today": n }),
        )?;
        Ok(n)
    }
}
