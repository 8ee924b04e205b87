//! Facts about this host read from /proc: cores, memory, kernel, hostname, and a process's resident set
//! (VmRSS). Owns nothing; reads only, and a missing file gives a default rather than an error.

use loadgen::report::MachineInfo;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|text| text.trim().to_owned()).unwrap_or_default()
}

/// A `Name:   123 kB` field of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

pub fn machine_info() -> MachineInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    MachineInfo {
        cores: std::thread::available_parallelism().map_or(1, |count| count.get()),
        memory_bytes: kib_field(&meminfo, "MemTotal:").unwrap_or(0),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
    }
}

/// Memory the kernel says is available for new work, bytes.
pub fn memory_available_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    kib_field(&meminfo, "MemAvailable:").unwrap_or(0)
}

/// VmRSS of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}
