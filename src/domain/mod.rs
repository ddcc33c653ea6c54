//! Pure rules of the fund: intake states, allocation of raised money to periods, and the
//! ledger's hash chain. No I/O here, so every rule is tested directly.

mod allocation;
mod hashing;
mod intake;

pub use allocation::{Allocation, PeriodBudget, allocate};
pub use hashing::{EntryFields, GENESIS_HASH, entry_hash};
pub use intake::{CapMode, IntakeState};
