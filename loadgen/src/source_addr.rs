//! Source addresses for client sockets. One (source address, target address, target port) triple gives at most
//! the ephemeral port range (~28,000) connections, so clients bind to many source addresses within the
//! configured CIDR blocks (default 127.0.1.0/24 on loopback) and let the kernel pick the port at connect time
//! (IP_BIND_ADDRESS_NO_PORT). Owns the parsing and enumeration of those addresses; the socket calls are the
//! agent's.

use std::net::Ipv4Addr;

/// Why a `--source-cidr` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error("`{text}` is not IPV4/PREFIX (e.g. 127.0.1.0/24)")]
    Syntax { text: String },
    #[error("prefix length {prefix} in `{text}` is not between 8 and 32")]
    Prefix { text: String, prefix: u8 },
    #[error("no source addresses given")]
    Empty,
}

/// An ordered set of IPv4 source addresses made of CIDR blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddresses {
    /// (first usable address, count) per block.
    blocks: Vec<(u32, u32)>,
    total: u64,
}

impl SourceAddresses {
    /// Parses `A.B.C.D/P[,A.B.C.D/P...]`. In blocks of /30 or wider the network and broadcast addresses are left
    /// out.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let mut blocks = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let syntax = || CidrError::Syntax { text: part.to_owned() };
            let (address, prefix) = part.split_once('/').ok_or_else(syntax)?;
            let address: Ipv4Addr = address.parse().map_err(|_| syntax())?;
            let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
            if !(8..=32).contains(&prefix) {
                return Err(CidrError::Prefix { text: part.to_owned(), prefix });
            }
            let size = 1u64 << (32 - prefix);
            let network = u32::from(address) & !((size - 1) as u32);
            let (first, count) = if size >= 4 { (network + 1, (size - 2) as u32) } else { (network, size as u32) };
            blocks.push((first, count));
        }
        if blocks.is_empty() {
            return Err(CidrError::Empty);
        }
        let total = blocks.iter().map(|(_, count)| u64::from(*count)).sum();
        Ok(Self { blocks, total })
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `index`-th address, wrapping around.
    pub fn nth(&self, index: u64) -> Ipv4Addr {
        let mut rest = index % self.total;
        for &(first, count) in &self.blocks {
            if rest < u64::from(count) {
                return Ipv4Addr::from(first + rest as u32);
            }
            rest -= u64::from(count);
        }
        unreachable!("index reduced modulo the total");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_enumerate_in_order_and_wrap() {
        let addresses = SourceAddresses::parse("127.0.1.0/24, 127.0.9.7/32").expect("valid");
        assert_eq!(addresses.len(), 255);
        assert_eq!(addresses.nth(0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(addresses.nth(253), Ipv4Addr::new(127, 0, 1, 254));
        assert_eq!(addresses.nth(254), Ipv4Addr::new(127, 0, 9, 7));
        assert_eq!(addresses.nth(255), Ipv4Addr::new(127, 0, 1, 1));
    }

    #[test]
    fn bad_blocks_are_typed_errors() {
        assert!(matches!(SourceAddresses::parse("127.0.1.0"), Err(CidrError::Syntax { .. })));
        assert!(matches!(SourceAddresses::parse("127.0.1.0/4"), Err(CidrError::Prefix { prefix: 4, .. })));
        assert!(matches!(SourceAddresses::parse("nope/24"), Err(CidrError::Syntax { .. })));
        assert_eq!(SourceAddresses::parse(" , "), Err(CidrError::Empty));
    }
}
