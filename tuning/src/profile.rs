//! Named sysctl profiles and the pure planning of what applying one would change.
//! Does not touch /proc: the binary reads current values, calls `plan_profile`, then writes the
//! changes in plan order with os.rs.
//! Invariant: ip_local_reserved_ports comes before ip_local_port_range in every profile, so server
//! ports are reserved before the ephemeral range widens over them; settings written as "at least"
//! are never lowered.

use crate::error::TuningError;
use crate::host::PortSet;
use crate::os::SCHED_AUTOGROUP_KEY;

/// How a profile sets one sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileValue {
    /// Write exactly this text (e.g. a tcp_mem triple or a port range).
    Exact(&'static str),
    /// Raise to at least this value; a higher current value is kept.
    AtLeast(u64),
    /// The union of the current reserved ports and the ports given to `apply` (`--reserve-ports`).
    ReservedPorts,
}

/// One sysctl of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileSetting {
    /// The dotted sysctl name.
    pub key: &'static str,
    /// What to set it to.
    pub value: ProfileValue,
    /// Whether the sysctl must exist; optional ones (nf_conntrack_max) are skipped when absent.
    pub required: bool,
    /// One line: why the profile sets it (a comment of the sysctl.d file).
    pub why: &'static str,
}

/// A named set of sysctls for one kind of host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The name `apply --profile` takes.
    pub name: &'static str,
    /// One line: the host it is for.
    pub description: &'static str,
    /// The settings, in the order they are written.
    pub settings: &'static [ProfileSetting],
}

const fn required(key: &'static str, value: ProfileValue, why: &'static str) -> ProfileSetting {
    ProfileSetting { key, value, required: true, why }
}

const RESERVED_PORTS_KEY: &str = "net.ipv4.ip_local_reserved_ports";
const PORT_RANGE_KEY: &str = "net.ipv4.ip_local_port_range";
const RESERVED_PORTS_WHY: &str = "server ports no outgoing connection may take as its source port";

/// What every profile sets after its port settings: descriptor limits, accept and device backlogs, TCP memory
/// (`tcp_mem`: low / pressure / high in 4 KiB pages, the one figure that differs), socket buffers, conntrack
/// (optional) and no autogroup (optional).
const fn connection_limits(tcp_mem: &'static str) -> [ProfileSetting; 10] {
    [
        required("fs.file-max", ProfileValue::AtLeast(4_194_304), "open files system-wide: 1M+ sockets plus headroom"),
        required(
            "fs.nr_open",
            ProfileValue::AtLeast(2_097_152),
            "the ceiling of RLIMIT_NOFILE per process (LimitNOFILE= of the unit)",
        ),
        required("net.core.somaxconn", ProfileValue::AtLeast(65_535), "accept backlog for reconnect storms"),
        required("net.ipv4.tcp_max_syn_backlog", ProfileValue::AtLeast(65_535), "half-open connections in a storm"),
        required("net.core.netdev_max_backlog", ProfileValue::AtLeast(16_384), "packets queued per device"),
        required(
            "net.ipv4.tcp_mem",
            ProfileValue::Exact(tcp_mem),
            "TCP buffer memory in 4 KiB pages: low pressure high",
        ),
        required("net.ipv4.tcp_rmem", ProfileValue::Exact("4096 16384 16777216"), "small receive buffers per socket"),
        required("net.ipv4.tcp_wmem", ProfileValue::Exact("4096 16384 16777216"), "small send buffers per socket"),
        ProfileSetting {
            key: "net.netfilter.nf_conntrack_max",
            value: ProfileValue::AtLeast(2_097_152),
            required: false,
            why: "tracked connections, only while nf_conntrack is loaded",
        },
        // Group scheduling per session turns wake-ups into tens of ms under load (advice.rs).
        ProfileSetting {
            key: SCHED_AUTOGROUP_KEY,
            value: ProfileValue::Exact("0"),
            required: false,
            why: "scheduler groups per session add tens of ms to wake-ups (results/capacity/autogroup/)",
        },
    ]
}

/// `first` then `rest`, as one array of `N` (= A + B) settings, in that order.
const fn then<const A: usize, const B: usize, const N: usize>(
    first: [ProfileSetting; A],
    rest: [ProfileSetting; B],
) -> [ProfileSetting; N] {
    assert!(A + B == N && A > 0, "N must be A + B, and `first` not empty");
    let mut all = [first[0]; N];
    let mut at = 0;
    while at < N {
        all[at] = if at < A { first[at] } else { rest[at - A] };
        at += 1;
    }
    all
}

/// A 2-core / 24 GiB box holding ~1M loopback connection pairs (engine and load generator together).
pub const LOOPBACK_MILLION: Profile = Profile {
    name: "loopback-million",
    description: "one box holding ~1M loopback connection pairs (2 cores, 24 GiB)",
    settings: &then::<2, 10, 12>(
        [
            required(RESERVED_PORTS_KEY, ProfileValue::ReservedPorts, RESERVED_PORTS_WHY),
            required(
                PORT_RANGE_KEY,
                ProfileValue::Exact("1024 65535"),
                "every port above 1023 for outgoing connections (the load generator's)",
            ),
        ],
        // 6 / 8 / 12 GiB: pressure covers 2M sockets × one page.
        connection_limits("1572864 2097152 3145728"),
    ),
};

/// A real server whose clients are elsewhere (≥ 32 GiB RAM), holding 1M+ connections.
pub const SERVER: Profile = Profile {
    name: "server",
    description: "a server host (≥ 32 GiB) whose 1M+ clients connect from other machines",
    settings: &then::<1, 10, 11>(
        [required(RESERVED_PORTS_KEY, ProfileValue::ReservedPorts, RESERVED_PORTS_WHY)],
        // 8 / 12 / 16 GiB.
        connection_limits("2097152 3145728 4194304"),
    ),
};

/// Every profile `apply` knows.
pub const PROFILES: &[Profile] = &[LOOPBACK_MILLION, SERVER];

/// The profile called `name`.
pub fn find_profile(name: &str) -> Result<&'static Profile, TuningError> {
    PROFILES.iter().find(|p| p.name == name).ok_or_else(|| TuningError::UnknownProfile {
        name: name.to_string(),
        known: PROFILES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
    })
}

/// What applying one setting would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `new`.
    Write,
    /// Leave it: already as wanted, or higher than an "at least".
    Keep,
    /// Optional sysctl that does not exist here (e.g. nf_conntrack not loaded).
    SkipMissing,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// The dotted sysctl name.
    pub key: &'static str,
    /// The current value (normalised), or empty when missing.
    pub old: String,
    /// The value after applying (equal to `old` unless `action` is `Write`).
    pub new: String,
    /// What applying does.
    pub action: Action,
}

/// Collapses runs of whitespace to one space, as the kernel prints tabs where sysctl takes spaces.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plans `profile` against current values given by `current` (None = sysctl missing). Fails on a
/// missing required sysctl or a current value this crate cannot parse; writes nothing.
pub fn plan_profile(
    profile: &Profile,
    reserve_ports: &PortSet,
    mut current: impl FnMut(&str) -> Option<String>,
) -> Result<Vec<PlannedChange>, TuningError> {
    let reserved_at = profile.settings.iter().position(|s| s.key == RESERVED_PORTS_KEY);
    let range_at = profile.settings.iter().position(|s| s.key == PORT_RANGE_KEY);
    if let Some(range_at) = range_at {
        assert!(reserved_at.is_some_and(|r| r < range_at), "reserve ports before widening the range");
        assert!(!reserve_ports.is_empty(), "widening the range needs ports to reserve");
    }
    let mut plan = Vec::with_capacity(profile.settings.len());
    for setting in profile.settings {
        let Some(old) = current(setting.key).map(|v| normalize(&v)) else {
            if setting.required {
                return Err(TuningError::SysctlMissing {
                    key: setting.key.to_string(),
                    path: setting.key.replace('.', "/"),
                });
            }
            plan.push(PlannedChange {
                key: setting.key,
                old: String::new(),
                new: String::new(),
                action: Action::SkipMissing,
            });
            continue;
        };
        let new = match setting.value {
            ProfileValue::Exact(text) => normalize(text),
            ProfileValue::AtLeast(wanted) => {
                let current = crate::host::parse_u64(setting.key, &old)?;
                current.max(wanted).to_string()
            }
            ProfileValue::ReservedPorts => PortSet::parse(&old)?.union(reserve_ports).to_string(),
        };
        let action = if new == old { Action::Keep } else { Action::Write };
        plan.push(PlannedChange { key: setting.key, old, new, action });
    }
    Ok(plan)
}

/// Parses a sysctl.d file into (key, value) pairs in order; a leading `-` (ignore failure) is dropped.
pub fn parse_sysctl_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().trim_start_matches('-').to_string(), normalize(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::limits::RESERVED_PORTS_DEFAULT;

    fn this_machine() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("net.ipv4.ip_local_reserved_ports", ""),
            ("net.ipv4.ip_local_port_range", "32768\t60999"),
            ("fs.file-max", "2466174"),
            ("fs.nr_open", "1048576"),
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_max_syn_backlog", "2048"),
            ("net.core.netdev_max_backlog", "1000"),
            ("net.ipv4.tcp_mem", "287898\t383866\t575796"),
            ("net.ipv4.tcp_rmem", "4096\t131072\t33554432"),
            ("net.ipv4.tcp_wmem", "4096\t16384\t4194304"),
        ])
    }

    fn reserve() -> PortSet {
        PortSet::parse(RESERVED_PORTS_DEFAULT).expect("default is valid")
    }

    #[test]
    fn every_profile_reserves_ports_first() {
        for profile in PROFILES {
            assert_eq!(profile.settings[0].key, RESERVED_PORTS_KEY, "{}", profile.name);
        }
    }

    #[test]
    fn loopback_million_plan_on_this_machine() {
        let machine = this_machine();
        let plan = plan_profile(&LOOPBACK_MILLION, &reserve(), |k| machine.get(k).map(|v| v.to_string()))
            .expect("all required sysctls present");
        let by_key = |k: &str| plan.iter().find(|c| c.key == k).expect(k).clone();
        assert_eq!(plan[0].key, RESERVED_PORTS_KEY);
        assert_eq!(plan[0].new, RESERVED_PORTS_DEFAULT);
        assert_eq!(plan[1].key, PORT_RANGE_KEY);
        assert_eq!((plan[1].old.as_str(), plan[1].new.as_str()), ("32768 60999", "1024 65535"));
        assert_eq!(by_key("fs.file-max").new, "4194304");
        assert_eq!(by_key("net.core.somaxconn").new, "65535");
        assert_eq!(by_key("net.ipv4.tcp_mem").action, Action::Write);
        assert_eq!(by_key("net.netfilter.nf_conntrack_max").action, Action::SkipMissing);
    }

    #[test]
    fn at_least_never_lowers_and_reserved_ports_merge() {
        let mut machine = this_machine();
        machine.insert("fs.file-max", "9999999999");
        machine.insert("net.ipv4.ip_local_reserved_ports", "9000,7000-7005");
        let plan = plan_profile(&SERVER, &reserve(), |k| machine.get(k).map(|v| v.to_string())).expect("valid");
        let file_max = plan.iter().find(|c| c.key == "fs.file-max").expect("in profile");
        assert_eq!(file_max.action, Action::Keep);
        assert_eq!(file_max.new, "9999999999");
        assert_eq!(plan[0].new, "5222,5269,5280-5281,7000-7100,9000");
    }

    #[test]
    fn missing_required_sysctl_is_an_error() {
        let mut machine = this_machine();
        machine.remove("net.core.somaxconn");
        let err = plan_profile(&SERVER, &reserve(), |k| machine.get(k).map(|v| v.to_string())).expect_err("missing");
        assert!(matches!(err, TuningError::SysctlMissing { ref key, .. } if key == "net.core.somaxconn"), "{err}");
    }

    #[test]
    fn unknown_profile_lists_known_ones() {
        let err = find_profile("nope").expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("loopback-million") && text.contains("server"), "{text}");
    }

    #[test]
    fn shipped_sysctl_d_files_match_profiles() {
        let files = [
            (&LOOPBACK_MILLION, include_str!("../sysctl.d/90-ringline-loopback-million.conf")),
            (&SERVER, include_str!("../sysctl.d/90-ringline-server.conf")),
        ];
        for (profile, text) in files {
            let lines = parse_sysctl_conf(text);
            let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
            let profile_keys: Vec<&str> = profile.settings.iter().map(|s| s.key).collect();
            assert_eq!(keys, profile_keys, "{}: same keys in the same order", profile.name);
            for ((_, value), setting) in lines.iter().zip(profile.settings) {
                let expected = match setting.value {
                    ProfileValue::Exact(text) => normalize(text),
                    ProfileValue::AtLeast(n) => n.to_string(),
                    ProfileValue::ReservedPorts => RESERVED_PORTS_DEFAULT.to_string(),
                };
                assert_eq!(value, &expected, "{}: {}", profile.name, setting.key);
            }
            let optional = text.lines().filter(|l| l.trim_start().starts_with('-')).count();
            assert_eq!(optional, profile.settings.iter().filter(|s| !s.required).count(), "{}", profile.name);
        }
    }
}
