//! The file-descriptor limit at start: raise the soft RLIMIT_NOFILE to the hard limit and say how many
//! connections this process can therefore hold, and what to raise for more. Owns only that check.

use crate::limits::FDS_RESERVED;

/// RLIMIT_NOFILE after raising the soft limit as far as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

impl FdLimit {
    /// Client connections this process can hold: one descriptor each, less the reserve.
    pub fn connections_max(&self) -> u64 {
        self.soft.saturating_sub(FDS_RESERVED)
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns both.
pub fn raise_nofile() -> std::io::Result<FdLimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct owned by this frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(FdLimit { soft: limit.rlim_cur, hard: limit.rlim_max })
}
