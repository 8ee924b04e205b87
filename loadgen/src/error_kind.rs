//! Names for failures, as counted in reports: connect errors by errno (`connect/refused`,
//! `connect/addr_not_available`, `connect/too_many_open_files`, …), I/O errors on established connections
//! (`io/reset`), server ERROR and GOAWAY codes and REJECT codes. Owns the naming only; counting is the caller's.

use std::io;

/// The report name of an I/O error's kind, by errno where there is one.
pub fn io_error_name(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ECONNRESET) => "reset",
        Some(libc::ETIMEDOUT) => "timeout",
        Some(libc::EADDRNOTAVAIL) => "addr_not_available",
        Some(libc::EADDRINUSE) => "addr_in_use",
        Some(libc::EMFILE) => "too_many_open_files",
        Some(libc::ENFILE) => "system_file_table_full",
        Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => "unreachable",
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => "out_of_memory",
        Some(_) => "other_errno",
        None => match error.kind() {
            io::ErrorKind::TimedOut => "timeout",
            io::ErrorKind::UnexpectedEof => "closed",
            io::ErrorKind::ConnectionReset => "reset",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_have_names() {
        assert_eq!(io_error_name(&io::Error::from_raw_os_error(libc::ECONNREFUSED)), "refused");
        assert_eq!(io_error_name(&io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)), "addr_not_available");
        assert_eq!(io_error_name(&io::Error::from_raw_os_error(libc::EMFILE)), "too_many_open_files");
        assert_eq!(io_error_name(&io::Error::new(io::ErrorKind::TimedOut, "t")), "timeout");
    }
}
