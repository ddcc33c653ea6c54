//! The one integration-test binary: every test starts the real app against a fresh database
//! of the engine named by `TEST_DATABASE` (`scripts/test.sh` runs it on both).

mod auth;
mod browser;
mod errors;
mod helpers;
mod intake;
mod ledger;
mod localstripe;
mod mail;
mod model;
mod offline;
mod pages;
mod payouts;
mod reports;
mod smtp;
mod stripe;
