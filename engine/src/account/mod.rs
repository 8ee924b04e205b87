//! Accounts: who exists and how a device proves it is theirs. Owns the device-key derivation, the directory
//! of provisioned users, registration by PIN (its limits, the PIN senders, the device generations it
//! issues), and their files in the data directory. Does not hold sessions or queues (the
//! shard does) and does not decide which core owns a user (`home.rs` does).

mod device_log;
mod directory;
mod keys;
mod pin_sender;
mod registration;
mod store;

pub use device_log::{DeviceGenerations, DeviceLog};
pub use directory::{Directory, ProvisionBatch};
pub use keys::KeyAuthority;
pub use pin_sender::{PinSendError, PinSender, PinSenderKind};
pub use registration::{IssuedPin, PHONE_MAX, PHONE_MIN, Refusal, Registrar, RegistrationLimits, SourceKey};
pub use store::{AccountStore, AccountStoreError, ProvisionSummary};
