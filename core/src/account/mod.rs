//! Accounts: who exists and how a device proves it is theirs. Owns the device-key derivation, the directory
//! of provisioned users and registration by PIN (its limits and the PINs it issues). Does not hold sessions
//! or queues (the shard does), does not decide which core owns a user (`home.rs` does), and touches no file
//! and no thread: the account files are the engine's (`data_dir`), getting a PIN to a phone is the runtime's
//! (`rt::pin_sender`), the shard only says which PIN to send.

mod directory;
mod keys;
mod registration;

pub use directory::{Directory, ProvisionBatch};
pub use keys::KeyAuthority;
pub use registration::{IssuedPin, PHONE_MAX, PHONE_MIN, Refusal, Registrar, RegistrationLimits, SourceKey};
