//! The error type of the tuning library: every way reading, judging or changing host limits can fail.
//! Does not decide how to report an error or which exit code to use: the `ringline-tune` binary does.

use std::io;

/// ringline-tuning reports failures to read or change host limits with this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuningError {
    /// A sysctl the caller needs has no file under /proc/sys (old kernel, or its module is not loaded).
    #[error("sysctl {key} does not exist on this kernel (no /proc/sys/{path}); is its module loaded?")]
    SysctlMissing {
        /// The dotted sysctl name, e.g. `net.core.somaxconn`.
        key: String,
        /// The same name as a path under /proc/sys.
        path: String,
    },
    /// A sysctl file exists but could not be read.
    #[error("reading sysctl {key}: {source}")]
    SysctlRead {
        /// The dotted sysctl name.
        key: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A sysctl (or /proc file) held text this library does not understand.
    #[error("{key} holds {value:?}, which is not {expected}")]
    SysctlMalformed {
        /// The dotted sysctl name or /proc path.
        key: String,
        /// The text that was read, trimmed.
        value: String,
        /// What the text should have looked like.
        expected: &'static str,
    },
    /// Writing a sysctl failed (EPERM in a container without the right namespace, EINVAL for a bad value).
    #[error("writing sysctl {key} = {value:?}: {source}")]
    SysctlWrite {
        /// The dotted sysctl name.
        key: String,
        /// The value that was being written.
        value: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A sysctl write returned success but reading it back gives another value.
    #[error("sysctl {key} reads back {actual:?} after writing {written:?}")]
    SysctlNotApplied {
        /// The dotted sysctl name.
        key: String,
        /// The value that was written.
        written: String,
        /// The value read back.
        actual: String,
    },
    /// getrlimit or setrlimit failed for a reason other than the probes this library expects.
    #[error("{call}({resource}) failed: {source}")]
    Rlimit {
        /// `getrlimit` or `setrlimit`.
        call: &'static str,
        /// `RLIMIT_NOFILE` or `RLIMIT_MEMLOCK`.
        resource: &'static str,
        /// The errno, as an I/O error.
        source: io::Error,
    },
    /// Changing sysctls needs root.
    #[error("changing sysctls needs root, but the effective uid is {euid}; rerun as root or add --dry-run")]
    NotRoot {
        /// The effective uid of this process.
        euid: u32,
    },
    /// No profile has this name.
    #[error("unknown profile {name:?}; known profiles: {known}")]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The known profile names, comma separated.
        known: String,
    },
    /// A port list such as `5222,7000-7100` could not be parsed.
    #[error("invalid port list {text:?}: {reason}")]
    InvalidPortList {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}
