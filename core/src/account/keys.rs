//! Device keys. A key is derived from the server secret, the user id and the device's generation with keyed
//! BLAKE3, so any core can check a HELLO with one hash and no per-user lookup: the hot path of a login
//! storm touches no database. Revocation bumps a user's generation; only the user's home core knows the
//! current generation, and it checks it when the connection arrives there.
//!
//! Layout of the 32 key bytes: generation (u32 LE), then the first 28 bytes of
//! `keyed_blake3(secret, "ringline device key v1" || user LE || generation LE)`.

use wire::{DeviceKey, UserId};

const CONTEXT: &[u8] = b"ringline device key v1";
const MAC_BYTES: usize = 28;

/// Derives and checks device keys with the server's secret.
#[derive(Clone)]
pub struct KeyAuthority {
    secret: [u8; 32],
}

impl std::fmt::Debug for KeyAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAuthority { secret: <hidden> }")
    }
}

impl KeyAuthority {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, user: UserId, generation: u32) -> [u8; MAC_BYTES] {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        hasher.update(CONTEXT);
        hasher.update(&user.to_le_bytes());
        hasher.update(&generation.to_le_bytes());
        let hash = hasher.finalize();
        let mut mac = [0u8; MAC_BYTES];
        mac.copy_from_slice(&hash.as_bytes()[..MAC_BYTES]);
        mac
    }

    /// The key of `user`'s device number `generation`.
    pub fn derive(&self, user: UserId, generation: u32) -> DeviceKey {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&generation.to_le_bytes());
        key[4..].copy_from_slice(&self.mac(user, generation));
        key
    }

    /// The generation `key` was made for, if it is a genuine key of `user`. Whether that generation is still
    /// current is the home core's question.
    pub fn verify(&self, user: UserId, key: &DeviceKey) -> Option<u32> {
        let generation = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
        let expected = self.mac(user, generation);
        // Compare without an early exit so the time taken does not say how many bytes matched.
        let difference = expected.iter().zip(&key[4..]).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (std::hint::black_box(difference) == 0).then_some(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_verify_and_carry_their_generation() {
        let authority = KeyAuthority::new([3; 32]);
        let key = authority.derive(42, 7);
        assert_eq!(authority.verify(42, &key), Some(7));
        assert_eq!(authority.verify(43, &key), None, "a key is bound to its user");
        assert_eq!(KeyAuthority::new([4; 32]).verify(42, &key), None, "and to the server secret");
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let authority = KeyAuthority::new([9; 32]);
        let key = authority.derive(1, 0);
        for byte in 0..32 {
            let mut forged = key;
            forged[byte] ^= 1;
            assert_eq!(authority.verify(1, &forged), None, "byte {byte}");
        }
    }
}
