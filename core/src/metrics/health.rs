//! Whether the server is ready for traffic, sans-IO: the runtime gathers the facts (`ServingStatus`) and
//! `/readyz` answers from `ServingStatus::check`. Liveness (`/healthz`) needs no decision: a process that
//! answers is alive.
//!
//! Ready means: the logs are recovered, every core accepts connections, and no shutdown has begun. A load
//! balancer takes a server that is not ready out of rotation; the reasons say why, for the operator.

/// What the runtime knows about serving, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingStatus {
    /// Cores the server runs.
    pub cores: usize,
    /// Cores whose listeners are being served (each counts itself once its I/O loop runs).
    pub cores_listening: usize,
    /// Every core's log was read back and the next epoch written.
    pub logs_recovered: bool,
    /// A shutdown (SIGTERM or SIGINT) has begun: listeners close and clients get GOAWAY.
    pub draining: bool,
}

/// Why the server is not ready, every reason that holds, in the order a start goes through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub reasons: Vec<String>,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not ready: {}", self.reasons.join("; "))
    }
}

impl ServingStatus {
    /// `Ok` when ready for traffic, else every reason it is not.
    pub fn check(&self) -> Result<(), NotReady> {
        let mut reasons = Vec::new();
        if !self.logs_recovered {
            reasons.push("recovering the logs".to_owned());
        }
        if self.cores_listening < self.cores {
            reasons.push(format!("{} of {} cores listening", self.cores_listening, self.cores));
        }
        if self.draining {
            reasons.push("draining: shutting down".to_owned());
        }
        if reasons.is_empty() { Ok(()) } else { Err(NotReady { reasons }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: ServingStatus = ServingStatus { cores: 2, cores_listening: 2, logs_recovered: true, draining: false };

    #[test]
    fn ready_only_when_recovered_listening_on_every_core_and_not_draining() {
        assert_eq!(READY.check(), Ok(()));
        let starting = ServingStatus { cores_listening: 0, logs_recovered: false, ..READY };
        assert_eq!(
            starting.check().map_err(|not_ready| not_ready.to_string()),
            Err("not ready: recovering the logs; 0 of 2 cores listening".to_owned())
        );
        let one_core = ServingStatus { cores_listening: 1, ..READY };
        assert_eq!(one_core.check().map_err(|not_ready| not_ready.reasons), Err(vec!["1 of 2 cores listening".into()]));
        let draining = ServingStatus { draining: true, ..READY };
        assert_eq!(
            draining.check().map_err(|not_ready| not_ready.reasons),
            Err(vec!["draining: shutting down".to_owned()])
        );
    }
}
