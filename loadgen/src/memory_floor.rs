//! The host memory floor (`--memory-floor-mib`): when this host's memory headroom falls under it, the run
//! stops as if interrupted, and the report says how many connections were up. On a box where the client and
//! the server sockets share the memory, that is where the box breaks, measured and reported instead of found
//! by the kernel's out-of-memory killer (which would pick an agent, an engine or an unrelated process).
//!
//! Headroom is free memory plus the file page cache (MemFree + Active(file) + Inactive(file)), not
//! MemAvailable: MemAvailable counts half of the reclaimable slab, and every socket's inode and dentry live in
//! reclaimable slab caches yet cannot be freed while the socket is open. At 2.2 million loopback pairs
//! MemAvailable read 4.8 GB while MemFree was 0.38 GB.
//!
//! The default floor, 1 GiB (5% of the memory on a host with less than 20 GiB), is what the kernel needed
//! here: ramping at 6,000 pairs/s (~60 MB/s) with nothing left to reclaim, its out-of-memory killer acted
//! while 0.4–0.5 GB were still free (`results/capacity/idle-break/`). Owns the decision and the lowest
//! reading; reads nothing itself.

/// The floor when none is given: 1 GiB, or 5% of a smaller host's memory (`memory_total_bytes`), so that a
/// small machine can still run.
pub fn default_floor_mib(memory_total_bytes: u64) -> u64 {
    (memory_total_bytes / (1024 * 1024) / 20).min(1024)
}

/// Watches headroom readings against a floor.
#[derive(Debug, Clone)]
pub struct MemoryFloor {
    floor_bytes: u64,
    lowest_bytes: Option<u64>,
    crossed: bool,
}

impl MemoryFloor {
    /// A floor of `floor_mib` MiB; 0 never stops the run (the lowest reading is still kept).
    pub fn new(floor_mib: u64) -> Self {
        Self { floor_bytes: floor_mib.saturating_mul(1024 * 1024), lowest_bytes: None, crossed: false }
    }

    /// Takes one headroom reading (bytes) while `connections_up` are up. The first reading under the floor
    /// returns why the run must stop; later ones return nothing, so the stop is asked once. A reading of 0 is
    /// an unreadable /proc/meminfo, not an empty host, and is ignored.
    pub fn observe(&mut self, headroom_bytes: u64, connections_up: u64) -> Option<String> {
        if headroom_bytes == 0 {
            return None;
        }
        self.lowest_bytes = Some(self.lowest_bytes.map_or(headroom_bytes, |lowest| lowest.min(headroom_bytes)));
        if self.crossed || headroom_bytes >= self.floor_bytes {
            return None;
        }
        self.crossed = true;
        Some(format!(
            "host memory: free memory and page cache fell to {} MiB, under --memory-floor-mib {}, with \
             {connections_up} connections up; stopped before the kernel's out-of-memory killer would act",
            headroom_bytes / (1024 * 1024),
            self.floor_bytes / (1024 * 1024)
        ))
    }

    /// The lowest headroom seen, bytes.
    pub fn lowest_bytes(&self) -> Option<u64> {
        self.lowest_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_reading_under_the_floor_stops_the_run_once_and_names_the_connections_up() {
        let mut floor = MemoryFloor::new(512);
        assert_eq!(floor.observe(4096 * MIB, 1_000), None);
        assert_eq!(floor.observe(512 * MIB, 2_000), None, "at the floor is not under it");
        let why = floor.observe(511 * MIB, 2_400_000).expect("under the floor");
        assert!(why.contains("511 MiB"), "{why}");
        assert!(why.contains("--memory-floor-mib 512"), "{why}");
        assert!(why.contains("2400000 connections up"), "{why}");
        assert_eq!(floor.observe(100 * MIB, 2_400_001), None, "asked once");
        assert_eq!(floor.lowest_bytes(), Some(100 * MIB));
    }

    #[test]
    fn the_default_floor_is_one_gib_or_five_percent_of_a_smaller_host() {
        assert_eq!(default_floor_mib(24 * 1024 * MIB), 1024);
        assert_eq!(default_floor_mib(4 * 1024 * MIB), 204);
        assert_eq!(default_floor_mib(0), 0, "an unreadable MemTotal never stops the run");
    }

    #[test]
    fn a_zero_floor_never_stops_but_keeps_the_lowest_reading() {
        let mut floor = MemoryFloor::new(0);
        assert_eq!(floor.observe(MIB, 10), None);
        assert_eq!(floor.observe(3 * MIB, 10), None);
        assert_eq!(floor.lowest_bytes(), Some(MIB));
    }

    #[test]
    fn an_unreadable_meminfo_is_not_an_empty_host() {
        let mut floor = MemoryFloor::new(512);
        assert_eq!(floor.observe(0, 10), None);
        assert_eq!(floor.lowest_bytes(), None);
    }
}
