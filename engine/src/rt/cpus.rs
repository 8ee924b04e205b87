//! Which CPUs the engine runs on: the ones this process may use (its affinity mask, which honours taskset
//! and cgroup cpusets), optionally the first `--cores` of them. Owns that choice only; pinning is glommio's.

use tuning::cpus::allowed_cpus;

/// The CPUs to run `cores` executors on, or an error naming how many there are.
pub fn choose_cpus(requested: Option<usize>) -> Result<Vec<usize>, String> {
    let allowed = allowed_cpus().map_err(|error| format!("reading this process's CPU affinity: {error}"))?;
    match requested {
        None => Ok(allowed),
        Some(cores) if cores <= allowed.len() => Ok(allowed[..cores].to_vec()),
        Some(cores) => Err(format!("--cores {cores}: this process may use only {} CPUs ({allowed:?})", allowed.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpus_and_too_many_is_refused() {
        let allowed = allowed_cpus().expect("affinity");
        assert!(!allowed.is_empty());
        assert_eq!(choose_cpus(Some(1)).expect("one"), vec![allowed[0]]);
        let error = choose_cpus(Some(allowed.len() + 1)).expect_err("too many");
        assert!(error.contains("may use only"), "{error}");
    }
}
