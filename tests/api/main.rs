//! The one integration-test binary: every test starts the real app against a fresh database
//! of the engine named by `TEST_DATABASE` (`scripts/test.sh` runs it on both).

mod auth;
mod browser;
mod contract;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod intake;
mod ledger;
mod limits;
mod localstripe;
mod mail;
mod model;
mod offline;
mod pages;
mod payouts;
mod refund_once;
mod reports;
mod smtp;
mod stripe;
