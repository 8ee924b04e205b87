//! The simulated disk of one core's log: segments as byte vectors, at most one write in flight (as `rt::log`
//! makes them: the next starts only after the previous is durable), completing after a seeded number of steps,
//! and what a crash leaves of that write: any subset of its 512-byte sectors landed, the rest never written
//! (zeros, or past the file's end) or garbage, or none of it. Recovery runs the engine's own code over it
//! (`wal::LogReader`, `wal::Recovery`, `RecoveredCore::first_segment_bytes`), as `rt::log::recover` does over
//! files.
//!
//! Invariant: a write is reported durable only once all its bytes are in its segment; only the write in flight
//! can be torn.

use std::collections::BTreeMap;

use ringline_core::limits::LOG_RECORD_BYTES_MAX;
use ringline_core::wal::{LogReader, PendingWrite, RecoveredCore, Recovery, SegmentOutcome};

use super::harness::Rng;

/// Unit of what lands: a device's logical block.
const SECTOR_BYTES: usize = 512;

/// A write issued to the disk, not yet durable.
#[derive(Debug)]
struct InFlight {
    write: PendingWrite,
    /// Steps of the log task before it completes.
    steps_left: usize,
}

/// What a crash did to the write in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tear {
    pub sectors_landed: usize,
    pub sectors_lost: usize,
    pub sectors_garbage: usize,
}

/// One core's log on the simulated disk.
#[derive(Debug, Default)]
pub struct SimDisk {
    pub segments: BTreeMap<u64, Vec<u8>>,
    in_flight: Option<InFlight>,
}

impl SimDisk {
    /// The disk of a core that recovery just started: segment 0 as recovery writes it.
    pub fn recovered(core: &RecoveredCore) -> Self {
        Self { segments: BTreeMap::from([(0, core.first_segment_bytes())]), in_flight: None }
    }

    pub fn is_writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Issues `write`, durable after `delay_steps` steps of the log task.
    pub fn start(&mut self, write: PendingWrite, delay_steps: usize) {
        assert!(self.in_flight.is_none(), "one write in flight per core");
        self.in_flight = Some(InFlight { write, steps_left: delay_steps });
    }

    /// One step of the log task: the write in flight lands whole once its delay is over; returns its sequence
    /// number then.
    pub fn step(&mut self) -> Option<u64> {
        let in_flight = self.in_flight.as_mut()?;
        if in_flight.steps_left > 0 {
            in_flight.steps_left -= 1;
            return None;
        }
        let InFlight { write, .. } = self.in_flight.take().expect("checked above");
        let segment = self.segments.entry(write.segment).or_default();
        let (start, end) = (write.offset as usize, write.offset as usize + write.bytes.len());
        if segment.len() < end {
            segment.resize(end, 0);
        }
        segment[start..end].copy_from_slice(&write.bytes);
        Some(write.lsn)
    }

    /// Compaction freed `segment`.
    pub fn delete(&mut self, segment: u64) {
        self.segments.remove(&segment);
    }

    /// The crash: the write in flight lands in part (each sector landed, lost or garbage, by `rng`) or not at
    /// all; the file grows only as far as the last sector that landed.
    pub fn crash(&mut self, rng: &mut Rng) -> Option<Tear> {
        let InFlight { write, .. } = self.in_flight.take()?;
        // The segment's file exists once its write is issued (its directory entry is synced first).
        let segment = self.segments.entry(write.segment).or_default();
        let mut tear = Tear::default();
        let (landed_percent, garbage_percent) = match rng.range(0, 3) {
            0 => (0, 0),
            1 => (100, 0),
            _ => (rng.range(10, 90) as u64, rng.range(0, 20) as u64),
        };
        for (index, sector) in write.bytes.chunks(SECTOR_BYTES).enumerate() {
            let at = write.offset as usize + index * SECTOR_BYTES;
            let landed: Vec<u8> = if rng.chance(landed_percent) {
                tear.sectors_landed += 1;
                sector.to_vec()
            } else if rng.chance(garbage_percent) {
                tear.sectors_garbage += 1;
                sector.iter().map(|&byte| byte ^ (rng.range(1, 255) as u8)).collect()
            } else {
                tear.sectors_lost += 1;
                continue;
            };
            if segment.len() < at + landed.len() {
                segment.resize(at + landed.len(), 0);
            }
            segment[at..at + landed.len()].copy_from_slice(&landed);
        }
        Some(tear)
    }

    /// Reads this core's log into `recovery` with the engine's replay, truncating a torn tail as the runtime
    /// does; returns what each segment held.
    pub fn recover_into(&mut self, recovery: &mut Recovery) -> Vec<(u64, SegmentOutcome)> {
        let mut reader = LogReader::new(LOG_RECORD_BYTES_MAX);
        let last = self.segments.keys().last().copied();
        let mut outcomes = Vec::new();
        for (&number, bytes) in &mut self.segments {
            let outcome = reader.recover_segment(bytes, Some(number) == last, recovery);
            if let Some(offset) = outcome.truncate_to() {
                bytes.truncate(offset as usize);
            }
            outcomes.push((number, outcome));
        }
        outcomes
    }
}
