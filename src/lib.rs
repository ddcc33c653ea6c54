//! crowdledger: a donation ledger for a legal-defense fund.
//!
//! The binary in `main.rs` only parses the command line; everything it runs lives here so the
//! integration tests and tools call the same code.

pub mod api_schema;
pub mod auth;
pub mod backup;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ledger;
pub mod lookup;
pub mod mail;
pub mod money;
pub mod payments;
pub mod receipts;
pub mod reports;
pub mod web;
