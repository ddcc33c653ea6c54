//! OpenAPI schema pieces of types shared by the HTTP layer and the layers below it (amounts,
//! donation statuses and methods, optional emails): the ledger's and the reports' answer and
//! filter types describe themselves with these, so they need nothing from the HTTP layer. The
//! document itself is built in `http::openapi`.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::money::Money;

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(money_pattern(2)))
            .description(Some(
                "An amount: a decimal string with exactly the fund currency's minor digits.",
            ))
            .examples([json!("1000000.00")])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }
}

/// An amount as a request takes it: `"25"`, `"25.5"`, `"25.50"`. Numbers, signs, exponents and
/// separators are refused with `invalid_amount`; so are amounts outside the bounds of the field.
pub struct AmountInput;

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(amount_input_pattern(2)))
            .description(Some(
                "An amount: digits with an optional point and at most the currency's minor \
                 digits (\"25\", \"25.5\", \"25.50\"). Zero, and amounts outside the field's \
                 bounds, are refused with invalid_amount.",
            ))
            .examples([json!("25.00")])
            .into()
    }
}

impl ToSchema for AmountInput {}

/// The pattern of an amount as the API answers it, with exactly `digits` decimals.
pub fn money_pattern(digits: u32) -> String {
    if digits == 0 {
        "^-?[0-9]+$".into()
    } else {
        format!("^-?[0-9]+\\.[0-9]{{{digits}}}$")
    }
}

/// Positive amounts with at most 13 significant integer digits (`money::MAX_INTEGER_DIGITS`)
/// and at most `digits` decimals: a non-zero integer part with any decimals, or a zero integer
/// part with a non-zero fraction. Leading zeros are free.
pub fn amount_input_pattern(digits: u32) -> String {
    let int = "0*[1-9][0-9]{0,12}";
    if digits == 0 {
        return format!("^{int}$");
    }
    let fractions: Vec<String> = (0..digits)
        .map(|zeros| {
            let rest = digits - zeros - 1;
            let tail = if rest == 0 {
                String::new()
            } else {
                format!("[0-9]{{0,{rest}}}")
            };
            format!("{}[1-9]{tail}", "0".repeat(zeros as usize))
        })
        .collect();
    format!(
        "^(?:{int}(?:\\.[0-9]{{1,{digits}}})?|0+\\.(?:{}))$",
        fractions.join("|")
    )
}

/// A schema of one of `values`.
pub fn one_of(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// A schema of one of `values`, or `null` (an optional field sent as null).
pub fn one_of_or_null(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            values.iter().map(|v| Value::from(*v)).chain([Value::Null]),
        ))
        .into()
}

/// An optional email: an address, `null`, or blank (taken as absent).
pub fn optional_email() -> Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, SchemaFormat};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
                .max_length(Some(254)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(
            r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        )))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Where the receipt goes, if known: an address, or null or blank when unknown.",
        ))
        .into()
}

/// `status` of a donation (filters, lists).
pub fn donation_status() -> Schema {
    one_of(&crate::domain::STATUSES)
}

/// `status` of a payment as the donor's page is told it.
pub fn payment_status() -> Schema {
    one_of(&crate::domain::PAYMENT_STATUSES)
}

/// `method` of a donation (filters, lists).
pub fn donation_method() -> Schema {
    one_of(&crate::domain::METHODS)
}
