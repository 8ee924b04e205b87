//! The process's CPU time, resident memory and file descriptors, read from `/proc/self` and `getrlimit` for
//! the standard `process_*` metrics. Called by the metrics thread at each scrape, never on a core; the text
//! of `/proc/self/stat` is parsed here, the encoding is `ringline_core::metrics`'.

use ringline_core::metrics::ProcessResources;

/// Reads the process's resources now; `None` if `/proc` or the limits cannot be read (not Linux, no procfs).
pub fn read() -> Option<ProcessResources> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // SAFETY: sysconf has no preconditions; a negative result (unknown) is refused below.
    let (ticks_per_second, page_bytes) =
        unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let stat = parse_stat(&stat, u64::try_from(ticks_per_second).ok()?, u64::try_from(page_bytes).ok()?)?;
    // The directory's own descriptor, open while it is listed, is not counted.
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1) as u64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid pointer it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(ProcessResources {
        cpu_us: stat.cpu_us,
        resident_bytes: stat.resident_bytes,
        open_fds,
        max_fds: limit.rlim_cur,
    })
}

/// What `/proc/self/stat` says about CPU and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFigures {
    cpu_us: u64,
    resident_bytes: u64,
}

/// Parses `/proc/[pid]/stat` (proc(5)): utime and stime (fields 14 and 15, in clock ticks) and rss (field 24,
/// in pages). The command name (field 2) is in parentheses and may hold spaces or `)`, so fields are counted
/// from after its last `)`.
fn parse_stat(text: &str, ticks_per_second: u64, page_bytes: u64) -> Option<StatFigures> {
    if ticks_per_second == 0 {
        return None;
    }
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: field n is at index n - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<u64>().ok());
    let ticks = field(14)?.checked_add(field(15)?)?;
    let rss_pages = field(24)?;
    Some(StatFigures {
        cpu_us: ticks.saturating_mul(1_000_000) / ticks_per_second,
        resident_bytes: rss_pages.saturating_mul(page_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rss_after_a_name_with_spaces_and_parentheses() {
        let text = "4242 (ring line) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 1000 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 2 0 0 0 0 0";
        assert_eq!(parse_stat(text, 100, 4096), Some(StatFigures { cpu_us: 3_000_000, resident_bytes: 300 * 4096 }));
    }

    #[test]
    fn refuses_text_that_is_not_a_stat_line() {
        assert_eq!(parse_stat("", 100, 4096), None);
        assert_eq!(parse_stat("1 (x) S 1 2", 100, 4096), None);
        assert_eq!(parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 x 12 13 14 15 16 17 18 19 20 21 22", 100, 4096), None);
        assert_eq!(parse_stat("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 1000 1 300", 0, 4096), None);
    }

    #[test]
    fn this_process_has_open_descriptors_within_its_limit_and_some_memory() {
        let resources = read().expect("/proc/self is readable on Linux");
        assert!(resources.open_fds >= 3, "stdin, stdout, stderr at least: {resources:?}");
        assert!(resources.open_fds <= resources.max_fds, "{resources:?}");
        assert!(resources.resident_bytes > 0, "{resources:?}");
    }
}
