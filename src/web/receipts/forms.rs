//! The forms and queries of `/receipts`.

use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct LangQuery {
    pub(crate) lang: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct EmailForm {
    pub(crate) lang: Option<String>,
    pub(crate) email: String,
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    pub(crate) lang: Option<String>,
    pub(crate) email: String,
    pub(crate) code: String,
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    pub(crate) lang: Option<String>,
    pub(crate) t: String,
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    pub(crate) lang: Option<String>,
    pub(crate) form_token: String,
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    pub(crate) lang: Option<String>,
    #[serde(default)]
    pub(crate) t: String,
}

#[derive(Deserialize)]
pub(crate) struct GiftsQuery {
    pub(crate) lang: Option<String>,
    pub(crate) sent: Option<String>,
}
