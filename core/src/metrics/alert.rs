//! Queue thresholds with hysteresis, sans-IO. A core feeds its queue levels every publish interval; an alert
//! is raised when a level reaches its threshold and cleared only when the level falls below three quarters of
//! it, so a level hovering at the threshold does not flap. `observe` returns only the changes: the runtime
//! logs one WARN per raise and one INFO per clear, never one per observation.

/// A queue the engine watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// Items (messages and receipts) waiting in this core's offline queue, all users together.
    OfflineMessages,
    /// Body bytes waiting in this core's offline queue.
    OfflineBytes,
    /// Messages waiting for one peer core (outbox plus channel), the deepest peer.
    ChannelDepth,
    /// Bytes written by the shard and not yet by the socket, all connections of the core together.
    OutboundBytes,
}

impl QueueKind {
    pub const ALL: [QueueKind; 4] =
        [QueueKind::OfflineMessages, QueueKind::OfflineBytes, QueueKind::ChannelDepth, QueueKind::OutboundBytes];

    /// The `queue` label value and the name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::OfflineMessages => "offline_messages",
            Self::OfflineBytes => "offline_bytes",
            Self::ChannelDepth => "channel_depth",
            Self::OutboundBytes => "outbound_bytes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for QueueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Level at which each queue raises its alert; 0 turns that alert off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertThresholds {
    pub offline_messages: u64,
    pub offline_bytes: u64,
    pub channel_depth: u64,
    pub outbound_bytes: u64,
}

impl AlertThresholds {
    pub fn get(&self, queue: QueueKind) -> u64 {
        match queue {
            QueueKind::OfflineMessages => self.offline_messages,
            QueueKind::OfflineBytes => self.offline_bytes,
            QueueKind::ChannelDepth => self.channel_depth,
            QueueKind::OutboundBytes => self.outbound_bytes,
        }
    }

    /// The level below which a raised alert clears: three quarters of the threshold (hysteresis).
    pub fn clear_below(&self, queue: QueueKind) -> u64 {
        let threshold = self.get(queue);
        threshold - threshold / 4
    }
}

/// One observation of a core's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLevels {
    pub offline_messages: u64,
    pub offline_bytes: u64,
    pub channel_depth: u64,
    /// The peer core whose channel is the deepest (named in the log line).
    pub channel_depth_peer: u16,
    pub outbound_bytes: u64,
}

impl QueueLevels {
    pub fn get(&self, queue: QueueKind) -> u64 {
        match queue {
            QueueKind::OfflineMessages => self.offline_messages,
            QueueKind::OfflineBytes => self.offline_bytes,
            QueueKind::ChannelDepth => self.channel_depth,
            QueueKind::OutboundBytes => self.outbound_bytes,
        }
    }
}

/// An alert that changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    Raised { queue: QueueKind, level: u64, threshold: u64 },
    Cleared { queue: QueueKind, level: u64, clear_below: u64 },
}

/// The alert state of one core.
#[derive(Debug, Clone)]
pub struct AlertMonitor {
    thresholds: AlertThresholds,
    raised: [bool; QueueKind::ALL.len()],
}

impl AlertMonitor {
    pub fn new(thresholds: AlertThresholds) -> Self {
        Self { thresholds, raised: [false; QueueKind::ALL.len()] }
    }

    pub fn thresholds(&self) -> &AlertThresholds {
        &self.thresholds
    }

    pub fn is_raised(&self, queue: QueueKind) -> bool {
        self.raised[queue.index()]
    }

    /// Takes in the current levels; appends to `changes` the alerts raised or cleared by them.
    pub fn observe(&mut self, levels: &QueueLevels, changes: &mut Vec<AlertChange>) {
        for queue in QueueKind::ALL {
            let threshold = self.thresholds.get(queue);
            let level = levels.get(queue);
            let raised = &mut self.raised[queue.index()];
            if threshold == 0 {
                *raised = false;
                continue;
            }
            if !*raised && level >= threshold {
                *raised = true;
                changes.push(AlertChange::Raised { queue, level, threshold });
            } else if *raised && level < self.thresholds.clear_below(queue) {
                *raised = false;
                changes.push(AlertChange::Cleared { queue, level, clear_below: self.thresholds.clear_below(queue) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLDS: AlertThresholds =
        AlertThresholds { offline_messages: 100, offline_bytes: 1_000, channel_depth: 0, outbound_bytes: 8 };

    fn observe(monitor: &mut AlertMonitor, levels: QueueLevels) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        monitor.observe(&levels, &mut changes);
        changes
    }

    fn offline(messages: u64) -> QueueLevels {
        QueueLevels { offline_messages: messages, ..QueueLevels::default() }
    }

    #[test]
    fn raises_once_at_the_threshold_and_clears_once_below_three_quarters() {
        let mut monitor = AlertMonitor::new(THRESHOLDS);
        assert_eq!(observe(&mut monitor, offline(99)), vec![]);
        let raised = AlertChange::Raised { queue: QueueKind::OfflineMessages, level: 100, threshold: 100 };
        assert_eq!(observe(&mut monitor, offline(100)), vec![raised]);
        assert!(monitor.is_raised(QueueKind::OfflineMessages));
        // Staying up, or falling into the band between 75 and 100, changes nothing: no log storm.
        for level in [150, 100, 99, 75, 80, 100, 76] {
            assert_eq!(observe(&mut monitor, offline(level)), vec![], "level {level}");
        }
        let cleared = AlertChange::Cleared { queue: QueueKind::OfflineMessages, level: 74, clear_below: 75 };
        assert_eq!(observe(&mut monitor, offline(74)), vec![cleared]);
        assert!(!monitor.is_raised(QueueKind::OfflineMessages));
        assert_eq!(observe(&mut monitor, offline(0)), vec![]);
        assert_eq!(observe(&mut monitor, offline(99)), vec![], "the band does not raise either");
    }

    #[test]
    fn flapping_around_the_threshold_gives_one_raise() {
        let mut monitor = AlertMonitor::new(THRESHOLDS);
        let changes: Vec<_> = [100, 99, 100, 98, 101, 90, 100]
            .into_iter()
            .flat_map(|level| observe(&mut monitor, offline(level)))
            .collect();
        assert_eq!(changes.len(), 1, "{changes:?}");
    }

    #[test]
    fn queues_are_independent_and_a_zero_threshold_is_off() {
        let mut monitor = AlertMonitor::new(THRESHOLDS);
        let levels = QueueLevels {
            offline_messages: 0,
            offline_bytes: 5_000,
            channel_depth: u64::MAX,
            channel_depth_peer: 1,
            outbound_bytes: 8,
        };
        let changes = observe(&mut monitor, levels);
        assert_eq!(
            changes,
            vec![
                AlertChange::Raised { queue: QueueKind::OfflineBytes, level: 5_000, threshold: 1_000 },
                AlertChange::Raised { queue: QueueKind::OutboundBytes, level: 8, threshold: 8 },
            ]
        );
        assert!(!monitor.is_raised(QueueKind::ChannelDepth));
        let changes = observe(&mut monitor, QueueLevels { outbound_bytes: 5, ..levels });
        assert_eq!(changes, vec![AlertChange::Cleared { queue: QueueKind::OutboundBytes, level: 5, clear_below: 6 }]);
        assert!(monitor.is_raised(QueueKind::OfflineBytes));
    }

    #[test]
    fn a_threshold_of_one_clears_at_zero() {
        let mut monitor = AlertMonitor::new(AlertThresholds { offline_messages: 1, ..THRESHOLDS });
        assert_eq!(observe(&mut monitor, offline(1)).len(), 1);
        assert_eq!(observe(&mut monitor, offline(1)), vec![]);
        assert_eq!(observe(&mut monitor, offline(0)).len(), 1);
    }
}
