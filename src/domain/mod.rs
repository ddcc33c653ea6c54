//! Pure rules of the fund: intake states, allocation of raised money to periods, the
//! ledger's hash chain, and what a donation's status and method can be. No I/O here, so every rule is tested directly.

mod allocation;
mod donation;
mod hashing;
mod intake;
pub mod payment_methods;

pub use allocation::{Allocation, PeriodBudget, allocate};
pub use donation::{METHODS, PAYMENT_STATUSES, STATUSES};
pub use hashing::{
    EntryFields, GENESIS_HASH, HASH_VERSION, Memo, entry_hash, memo_digest, moves_paid_out_rightly,
};
pub use intake::{CapMode, IntakeState};
