//! The one integration-test binary: every test starts the real app against a fresh database
//! of the engine named by `TEST_DATABASE` (`scripts/test.sh` runs it on both).

mod approvals;
mod audit_trail;
mod auth;
mod backup;
mod backup_move;
mod backup_schedule;
mod browser;
mod contract;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod intake;
mod layers;
mod ledger;
mod limits;
mod localstripe;
mod mail;
mod metrics;
mod migrations;
mod model;
mod offline;
mod outbox_review;
mod pages;
mod payouts;
mod readiness;
mod refund_once;
mod reports;
mod review;
mod schema_drift;
mod shutdown;
mod slow_stripe;
mod smtp;
mod stripe;
mod stripe_review;
