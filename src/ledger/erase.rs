//! Erase on request (issue 24): a donor's name and address leave every row that holds them
//! (donations, the outbox's bodies, their one-time codes); amounts, dates, methods and the
//! ledger entries stay, so `verify` still passes and every total is unchanged. The audit
//! records that an erasure happened, by whom and of how many gifts, without the erased data.
//! Refused while a gift of the donor is pending (its receipt is still to be sent) or disputed.

use diesel::prelude::*;

use super::{Ctx, Op};
use crate::db::schema::{donations, lookup_codes, outbox};
use crate::error::{AppError, ErrorCode};

/// What an erased donor's gifts are named.
pub const ERASED_NAME: &str = "";

/// Erases the donor who gave with `email` (normalized).
#[derive(Debug)]
pub struct EraseDonor {
    /// The donor's address, trimmed and lower-cased.
    pub email: String,
    /// Who asked (staff email, or `cli`).
    pub actor: String,
}

impl Op for EraseDonor {
    type Output = usize;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<usize, AppError> {
        let gifts: Vec<(i64, String, Option<String>)> = donations::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(email) = ")
                    .bind::<diesel::sql_types::Text, _>(&self.email),
            )
            .select((donations::id, donations::status, donations::dispute_status))
            .load(cx.conn()?)?;
        if let Some((id, status, _)) = gifts
            .iter()
            .find(|(_, s, d)| s == "pending" || d.as_deref() == Some("open"))
        {
            let why = if status == "pending" {
                "is pending"
            } else {
                "is disputed"
            };
            return Err(AppError {
                code: ErrorCode::DonorHasOpenGifts,
                detail: format!(
                    "gift {id} of this donor {why}: erase once it is settled (its receipt or the \
                     dispute still needs the donor's address)"
                ),
                extra: Some(serde_json::json!({ "donation_id": id })),
            });
        }
        let ids: Vec<i64> = gifts.iter().map(|g| g.0).collect();
        let conn = cx.conn()?;
        diesel::update(donations::table.filter(donations::id.eq_any(&ids)))
            .set((
                donations::donor_name.eq(ERASED_NAME),
                donations::email.eq(None::<String>),
                donations::anonymous.eq(true),
            ))
            .execute(conn)?;
        // Emails about these gifts, and those addressed to the donor: their bodies go (a
        // receipt's body holds no name: it is read from the donation when sent).
        let addressed = format!("%\"to\":\"{}\"%", self.email.replace('%', "\\%"));
        diesel::update(
            outbox::table.filter(
                outbox::donation_id
                    .eq_any(&ids)
                    .or(outbox::payload.like(&addressed)),
            ),
        )
        .set(outbox::payload.eq("{\"erased\":true}"))
        .execute(conn)?;
        diesel::delete(lookup_codes::table.filter(lookup_codes::email.eq(&self.email)))
            .execute(conn)?;
        cx.audit(
            &self.actor,
            "donor.erased",
            &serde_json::json!({ "gifts": ids.len() }),
        )?;
        Ok(ids.len())
    }
}
