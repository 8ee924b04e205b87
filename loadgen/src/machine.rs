//! Facts about this host read from /proc: cores, memory, kernel, hostname, and a process's resident set
//! (VmRSS, peak VmHWM) and CPU time. Owns nothing; reads only, and a missing file gives a default rather than an error.
//! Also this process's socket budget (RLIMIT_NOFILE) and the wall clock every process on the host shares, which
//! the controller and the agents both read.

use loadgen::limits::FD_HEADROOM;
use loadgen::report::MachineInfo;

/// Microseconds since the Unix epoch (CLOCK_REALTIME): the clock every agent on a host shares.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Client sockets one process may hold: the soft RLIMIT_NOFILE less headroom.
pub fn connections_max() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let soft = if result == 0 { limit.rlim_cur } else { 1024 };
    soft.saturating_sub(FD_HEADROOM)
}

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

/// Peak VmRSS (VmHWM) of this process, bytes.
pub fn own_rss_peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM:")
}

/// User plus system CPU time of process `pid` (or `self`), milliseconds.
pub fn cpu_ms(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces, closed by the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&hz| hz > 0)?;
    Some(ticks * 1000 / per_second)
}

/// Host-wide memory figures that grow with connections: kernel slab (socket structures live there), memory
/// in use (total − available) and TCP socket buffer memory; and the headroom left for new sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostMemory {
    pub slab_bytes: u64,
    pub used_bytes: u64,
    pub tcp_buffer_bytes: u64,
    /// Free memory plus the file page cache (MemFree + Active(file) + Inactive(file)): what new sockets can
    /// still take without the kernel freeing anything a running process holds (see `loadgen::memory_floor`
    /// for why not MemAvailable). 0 if /proc/meminfo cannot be read.
    pub headroom_bytes: u64,
}

pub fn host_memory() -> HostMemory {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = kib_field(&meminfo, "MemTotal:").unwrap_or(0);
    let available = kib_field(&meminfo, "MemAvailable:").unwrap_or(0);
    // /proc/net/sockstat: `TCP: inuse N orphan N tw N alloc N mem PAGES`.
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp_pages = sockstat
        .lines()
        .find(|line| line.starts_with("TCP:"))
        .and_then(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|field| *field == "mem")?;
            fields.get(at + 1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    HostMemory {
        slab_bytes: kib_field(&meminfo, "Slab:").unwrap_or(0),
        used_bytes: total.saturating_sub(available),
        tcp_buffer_bytes: tcp_pages * 4096,
        headroom_bytes: ["MemFree:", "Active(file):", "Inactive(file):"]
            .iter()
            .map(|name| kib_field(&meminfo, name).unwrap_or(0))
            .sum(),
    }
}

/// Busy and total jiffies of every CPU (`cpuN` lines of /proc/stat), in CPU order.
pub fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|line| line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|line| {
            let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            let total: u64 = values.iter().sum();
            // idle and iowait are the 4th and 5th values.
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            (total - idle.min(total), total)
        })
        .collect()
}

/// Share of each CPU that was busy between two `cpu_times` readings.
pub fn cpu_busy_between(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(&(busy0, total0), &(busy1, total1))| {
            let total = total1.saturating_sub(total0);
            if total == 0 { 0.0 } else { busy1.saturating_sub(busy0) as f64 / total as f64 }
        })
        .collect()
}

/// VmRSS of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// A note for the report when the host's scheduler groups tasks per session (autogroup): under load that
/// adds tens of milliseconds to wake-ups, so latency tails measured here are the host's as much as the
/// server's. `None` when it is off or the kernel has none.
pub fn autogroup_note() -> Option<String> {
    let key = tuning::SCHED_AUTOGROUP_KEY;
    (tuning::read_sched_autogroup().ok().flatten() == Some(true)).then(|| {
        format!(
            "{key} is 1: the scheduler groups tasks per session, which adds tens of ms to wake-ups under load and \
             inflates latency tails; turn it off with `sysctl -w {key}=0` or `ringline-tune apply`"
        )
    })
}
