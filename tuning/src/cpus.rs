//! CPU placement of the calling process or thread: which CPUs it may run on (its affinity mask, which honours
//! taskset and cgroup cpusets), and restricting it to some of them. The one place that calls
//! `sched_getaffinity` and `sched_setaffinity`; which CPUs to choose is the caller's decision (the engine's
//! `--cores`, the load generator's engines and agent cores, the engine's unpinned log-sync threads).

use std::io;

/// The CPUs the calling thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bitmask owned by this frame; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the mask filled above, with indices below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
}

/// Cores for each of `processes` processes that share `cpus` CPUs on one host (engines, load-generator
/// agents): what was `requested`, else `None` (every CPU) for a single process, else CPUs ÷ processes, at
/// least 1, so that their executors do not outnumber the CPUs. On the 2-core box six 2-core engines cost twice
/// the CPU per message of six 1-core ones, and 1-thread agents 15–18% less than 2-thread ones
/// (results/capacity/README.md).
pub fn cores_each(requested: Option<usize>, processes: usize, cpus: usize) -> Option<usize> {
    match requested {
        Some(cores) => Some(cores),
        None if processes > 1 => Some((cpus / processes).max(1)),
        None => None,
    }
}

/// Restricts the calling thread to `cpus` (in a child between fork and exec: the whole process), within what
/// its cgroup allows. CPUs at or past `CPU_SETSIZE` are ignored. Allocates nothing, so a `pre_exec` hook may
/// call it.
pub fn set_cpu_affinity(cpus: impl IntoIterator<Item = usize>) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it for indices below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus.into_iter().filter(|&cpu| cpu < libc::CPU_SETSIZE as usize) {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the call reads `set`, which lives through it, and changes only this thread's affinity.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lets the calling thread run on every CPU its cgroup allows (undoes a pin).
pub fn unpin_current_thread() -> io::Result<()> {
    set_cpu_affinity(0..libc::CPU_SETSIZE as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_sharing_a_host_split_its_cpus() {
        assert_eq!(cores_each(None, 1, 2), None, "one process: every CPU");
        assert_eq!(cores_each(None, 6, 2), Some(1));
        assert_eq!(cores_each(None, 4, 64), Some(16));
        assert_eq!(cores_each(None, 3, 8), Some(2));
        assert_eq!(cores_each(Some(2), 6, 2), Some(2), "what was asked for wins");
    }

    #[test]
    fn a_thread_pinned_to_one_allowed_cpu_sees_only_it_and_unpinning_gives_the_rest_back() {
        std::thread::spawn(|| {
            let allowed = allowed_cpus().expect("affinity");
            assert!(!allowed.is_empty());
            set_cpu_affinity([allowed[0], libc::CPU_SETSIZE as usize + 5]).expect("pin to an allowed CPU");
            assert_eq!(allowed_cpus().expect("affinity"), vec![allowed[0]]);
            unpin_current_thread().expect("unpin");
            assert_eq!(allowed_cpus().expect("affinity"), allowed);
            assert!(set_cpu_affinity([]).is_err(), "an empty set is refused by the kernel, not a panic");
        })
        .join()
        .expect("test thread");
    }
}
