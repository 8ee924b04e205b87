//! Local engine processes for `--spawn-engine`: provisions the users once (`ringline users provision`), starts
//! enough `ringline serve` processes on their own ports to hold the connections under the fd limit (all on the
//! same data directory, so each accepts exactly the provisioned users), waits until each accepts TCP, reads
//! their RSS, and stops them (SIGTERM, then SIGKILL after a grace period) when done, on error and on Ctrl-C
//! (the fleet stops itself when dropped). Engines run in their own process group, so a terminal's Ctrl-C
//! reaches the controller only and the shutdown stays in order.
//!
//! With TLS (`--spawn-engine --tls`) it first makes a dev certificate (`ringline tls dev-cert --out-dir
//! DATA_DIR/tls`), gives every engine a TLS listener on its own port with that certificate, and hands the
//! controller the TLS addresses as targets and the certificate to trust.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long an engine may take to accept its first TCP connection.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an engine may take to exit after SIGTERM before it is killed: 51 engines closing 20,000 connections
/// each at once on two cores took 20–35 s in the 1M runs, starved of CPU but closing connections all along
/// (results/capacity/shutdown/README.md). An engine that stops making progress gives up by itself 10 s after
/// its own 10 s grace.
const ENGINE_STOP_GRACE: Duration = Duration::from_secs(60);

/// Running engine processes.
pub struct EngineFleet {
    /// Each engine, its plaintext address and its TLS address (with TLS).
    engines: Vec<(Child, SocketAddr, Option<SocketAddr>)>,
    pub keys_file: PathBuf,
    pub data_dir: PathBuf,
    /// The dev certificate the engines serve TLS with (PEM), with TLS.
    pub tls_cert: Option<PathBuf>,
    remove_data_dir: bool,
}

/// Runs `ringline tls dev-cert --out-dir DIR`; returns the certificate's and the key's paths.
fn make_dev_cert(bin: &Path, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let output = Command::new(bin)
        .args(["tls", "dev-cert", "--out-dir"])
        .arg(dir)
        .output()
        .with_context(|| format!("running {} tls dev-cert", bin.display()))?;
    if !output.status.success() {
        bail!("`ringline tls dev-cert` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    anyhow::ensure!(
        cert.is_file() && key.is_file(),
        "`ringline tls dev-cert` wrote no cert.pem and key.pem in {}",
        dir.display()
    );
    Ok((cert, key))
}

/// Waits until `address` accepts TCP, or the engine exits, or the start timeout passes.
fn wait_until_accepting(child: &mut Child, index: usize, address: &SocketAddr, data_dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("checking an engine")? {
            bail!(
                "engine {index} exited with {status} before accepting; see {}/engine-{index}.log",
                data_dir.display()
            );
        }
        if started.elapsed() > ENGINE_START_TIMEOUT {
            bail!("engine {index} did not accept on {address} within {ENGINE_START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `ringline` binary: `--engine-bin`, or next to this executable (also from a test's `deps/` directory).
pub fn locate_engine_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(path.is_file(), "--engine-bin {} is not a file", path.display());
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut dir = exe.parent().map(Path::to_owned);
    while let Some(candidate_dir) = dir {
        let candidate = candidate_dir.join("ringline");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if candidate_dir.file_name().is_some_and(|name| name == "deps") {
            dir = candidate_dir.parent().map(Path::to_owned);
        } else {
            break;
        }
    }
    bail!(
        "no `ringline` binary next to {}: build it (cargo build -p ringline) or pass --engine-bin PATH",
        exe.display()
    )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

/// The CPUs of this process's affinity mask, ascending (all of `0..available_parallelism` if it cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    tuning::cpus::allowed_cpus()
        .unwrap_or_else(|_| (0..std::thread::available_parallelism().map_or(1, |count| count.get())).collect())
}

/// The CPUs engine `index` of a fleet runs on when each engine has `cores` of the `allowed` CPUs: consecutive
/// slices round-robin, so that engines share the CPUs evenly (`--cores N` alone takes the first N allowed).
fn engine_cpus(index: usize, cores: usize, allowed: &[usize]) -> Vec<usize> {
    if allowed.is_empty() {
        return Vec::new();
    }
    let cores = cores.clamp(1, allowed.len());
    (0..cores).map(|offset| allowed[(index * cores + offset) % allowed.len()]).collect()
}

/// Restricts the child to `cpus` (its executors then pin within them).
fn run_on_cpus(command: &mut Command, cpus: Vec<usize>) {
    // SAFETY: `set_cpu_affinity` allocates nothing and makes one system call that touches only the child.
    unsafe {
        command.pre_exec(move || tuning::cpus::set_cpu_affinity(cpus.iter().copied()));
    }
}

/// Asks the kernel to SIGTERM the child if the controller dies first.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

impl EngineFleet {
    /// Provisions `users` users and starts `processes` engines, with TLS listeners too if `tls`. With more than
    /// one engine, each runs on `cores` (default: CPUs ÷ engines) of this process's CPUs, taken round-robin.
    pub fn start(
        bin: &Path,
        data_dir: Option<&Path>,
        processes: usize,
        users: u64,
        cores: Option<usize>,
        extra_args: &[String],
        tls: bool,
    ) -> anyhow::Result<Self> {
        let (data_dir, remove_data_dir) = match data_dir {
            Some(dir) => (dir.to_owned(), false),
            None => {
                let unique = format!("ringline-loadgen-{}-{}", std::process::id(), crate::machine::now_us());
                (std::env::temp_dir().join(unique), true)
            }
        };
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let keys_file = data_dir.join("loadgen-keys.txt");
        let output = Command::new(bin)
            .args(["users", "provision", "--data-dir"])
            .arg(&data_dir)
            .args(["--count", &users.to_string(), "--keys-out"])
            .arg(&keys_file)
            .output()
            .with_context(|| format!("running {} users provision", bin.display()))?;
        if !output.status.success() {
            bail!(
                "`ringline users provision` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut fleet = Self { engines: Vec::new(), keys_file, data_dir, tls_cert: None, remove_data_dir };
        let tls_files = if tls { Some(make_dev_cert(bin, &fleet.data_dir.join("tls"))?) } else { None };
        fleet.tls_cert = tls_files.as_ref().map(|(cert, _)| cert.clone());
        let allowed = allowed_cpus();
        let cores = tuning::cpus::cores_each(cores, processes, allowed.len().max(1));
        for index in 0..processes {
            let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let tls_address = match tls_files {
                Some(_) => Some(SocketAddr::from(([127, 0, 0, 1], free_port()?))),
                None => None,
            };
            let log_path = fleet.data_dir.join(format!("engine-{index}.log"));
            let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
            // Each engine owns its logs: a second process gets a copy of the accounts in its own directory.
            let engine_dir = if index == 0 {
                fleet.data_dir.clone()
            } else {
                let dir = fleet.data_dir.join(format!("engine-{index}"));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                for file in ["secret", "users"] {
                    std::fs::copy(fleet.data_dir.join(file), dir.join(file))
                        .with_context(|| format!("copying the accounts to {}", dir.display()))?;
                }
                dir
            };
            let mut command = Command::new(bin);
            command.args(["serve", "--listen", &address.to_string(), "--data-dir"]).arg(&engine_dir);
            if let Some(cores) = cores {
                command.args(["--cores", &cores.to_string()]);
            }
            if let Some(cores) = cores
                && processes > 1
            {
                // Without this every engine's `--cores N` would take the same first N CPUs.
                run_on_cpus(&mut command, engine_cpus(index, cores, &allowed));
            }
            if let (Some(tls_address), Some((cert, key))) = (tls_address, &tls_files) {
                command.args(["--tls-listen", &tls_address.to_string(), "--tls-cert"]).arg(cert);
                command.arg("--tls-key").arg(key);
            }
            command.args(extra_args);
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).process_group(0);
            die_with_parent(&mut command);
            let child = command.spawn().with_context(|| format!("starting {} serve", bin.display()))?;
            fleet.engines.push((child, address, tls_address));
        }
        for (index, (child, address, tls_address)) in fleet.engines.iter_mut().enumerate() {
            wait_until_accepting(child, index, address, &fleet.data_dir)?;
            if let Some(tls_address) = tls_address {
                wait_until_accepting(child, index, tls_address, &fleet.data_dir)?;
            }
        }
        Ok(fleet)
    }

    /// The addresses clients connect to: the TLS ones with TLS.
    pub fn targets(&self) -> Vec<SocketAddr> {
        self.engines.iter().map(|(_, address, tls_address)| tls_address.unwrap_or(*address)).collect()
    }

    /// Sum of the engines' VmRSS.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.engines.iter().map(|(child, _, _)| crate::machine::rss_bytes(child.id())).sum()
    }

    /// CPU seconds (user + system) the engines used so far, summed.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let ms: Option<u64> =
            self.engines.iter().map(|(child, _, _)| crate::machine::cpu_ms(&child.id().to_string())).sum();
        ms.map(|ms| ms as f64 / 1e3)
    }

    /// SIGTERM every engine, wait for the grace period, SIGKILL what is left. Returns how many needed SIGKILL.
    pub fn stop(&mut self) -> usize {
        for (child, _, _) in &self.engines {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: sending a signal to our own child process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let started = Instant::now();
        let mut killed = 0;
        for (child, _, _) in &mut self.engines {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() > ENGINE_STOP_GRACE => {
                        let _ = child.kill();
                        let _ = child.wait();
                        killed += 1;
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.engines.clear();
        if self.remove_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            self.remove_data_dir = false;
        }
        killed
    }
}

impl Drop for EngineFleet {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::engine_cpus;

    #[test]
    fn engines_take_the_cpus_round_robin() {
        let allowed = [2, 3, 5];
        let one_each: Vec<Vec<usize>> = (0..4).map(|index| engine_cpus(index, 1, &allowed)).collect();
        assert_eq!(one_each, vec![vec![2], vec![3], vec![5], vec![2]]);
        assert_eq!(engine_cpus(1, 2, &allowed), vec![5, 2]);
        assert_eq!(engine_cpus(0, 9, &allowed), vec![2, 3, 5], "never more CPUs than allowed");
        assert_eq!(engine_cpus(0, 1, &[]), Vec::<usize>::new());
    }
}
