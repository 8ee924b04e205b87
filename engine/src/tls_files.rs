//! The TLS files: reading the server's certificate chain and key from PEM files (at start and on each
//! reload), and writing a development certificate (`ringline tls dev-cert`). Parsing and checking the PEM is
//! `ringline_core::tls`'s; this module only moves bytes between files and it. Never overwrites a file in place:
//! each is written aside and renamed, so a running server reloading the pair never reads half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ringline_core::tls::{DevCertError, DevCertificate, ServerIdentity, TlsSetupError};

/// Reads and checks the PEM chain (end-entity certificate first) and key.
pub fn load_identity(certificate: &Path, key: &Path) -> Result<ServerIdentity, TlsSetupError> {
    let chain_pem = std::fs::read(certificate)
        .map_err(|source| TlsSetupError::ReadCertificate { path: certificate.to_owned(), source })?;
    let key_pem = std::fs::read(key).map_err(|source| TlsSetupError::ReadKey { path: key.to_owned(), source })?;
    ServerIdentity::from_pem(&chain_pem, certificate, &key_pem, key)
}

/// Writes `DIR/cert.pem` and `DIR/key.pem` (mode 0600), creating `DIR` if needed. Returns their paths.
pub fn write_dev_certificate(certificate: &DevCertificate, dir: &Path) -> Result<(PathBuf, PathBuf), DevCertError> {
    std::fs::create_dir_all(dir).map_err(|source| DevCertError::Write { path: dir.to_owned(), source })?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    write_replacing(&key, certificate.key_pem.as_bytes(), 0o600)?;
    write_replacing(&cert, certificate.cert_pem.as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// Writes `bytes` to a new file beside `path` with `mode`, then renames it over `path`.
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevCertError> {
    let error = |source| DevCertError::Write { path: path.to_owned(), source };
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{}.tmp", std::process::id()));
    let aside = PathBuf::from(aside);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&aside).map_err(error)?;
    // `mode` applies only to a new file; the aside file might be a leftover of a crash.
    std::fs::set_permissions(&aside, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&aside, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ringline_core::tls::DEV_CERT_DEFAULT_NAMES;

    use super::*;

    #[test]
    fn a_written_pair_loads_back_with_a_private_key_file() {
        let dir = std::env::temp_dir().join(format!("ringline-dev-cert-{}", std::process::id()));
        let names: Vec<String> = DEV_CERT_DEFAULT_NAMES.iter().map(|name| (*name).to_owned()).collect();
        let dev = DevCertificate::generate(&names).expect("generate");
        let (cert, key) = write_dev_certificate(&dev, &dir).expect("write");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let identity = load_identity(&cert, &key).expect("loads");
        assert_eq!(identity.fingerprint(), dev.fingerprint);
        assert!(identity.covers("localhost"));
        // Written again over the first pair: the new one replaces it.
        let again = DevCertificate::generate(&names).expect("generate");
        write_dev_certificate(&again, &dir).expect("write");
        assert_eq!(load_identity(&cert, &key).expect("loads").fingerprint(), again.fingerprint);
        assert_ne!(again.fingerprint, dev.fingerprint);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = load_identity(Path::new("/nonexistent/cert.pem"), Path::new("key.pem")).expect_err("missing");
        assert!(error.to_string().starts_with("reading the TLS certificate /nonexistent/cert.pem"), "{error}");
    }
}
