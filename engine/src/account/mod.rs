//! Accounts: who exists and how a device proves it is theirs. Owns the device-key derivation, the directory
//! of provisioned users, and their files in the data directory. Does not hold sessions or queues (the
//! shard does) and does not decide which core owns a user (`home.rs` does).

mod directory;
mod keys;
mod store;

pub use directory::{Directory, ProvisionBatch};
pub use keys::KeyAuthority;
pub use store::{AccountStore, AccountStoreError, ProvisionSummary};
