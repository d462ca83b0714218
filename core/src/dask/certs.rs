//! The per-cluster certificate authority of a Dask cluster (rcgen): a CA made when the cluster
//! is created, three leaves signed by it — `scheduler`, `worker` (every worker shares one) and
//! `client` (what `corral dask-env` hands to the user's processes) — and then the CA's key is
//! dropped, never written: nobody, corral included, can mint another certificate the cluster
//! trusts. Scheduler and workers require a client certificate from this CA on every
//! connection, so a stranger who reaches a port gets nothing.
//!
//! distributed does not check host names (the CA pin and the client certificates are what
//! protect the cluster); the leaves name their role anyway, for whoever reads them.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::DaskFiles;

/// Who a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Scheduler,
    Worker,
    Client,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Scheduler, Role::Worker, Role::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Scheduler => "scheduler",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot make the Dask certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Writes `bytes` to a new file `path`, mode 0600 from its creation (an old one is replaced).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "corral cluster CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

fn leaf_params(role: Role) -> Result<CertificateParams, rcgen::Error> {
    let name = format!("corral-dask-{}", role.as_str());
    let mut p = CertificateParams::new(vec![name.clone()])?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every Dask process both accepts and makes connections.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(p)
}

/// Makes the cluster's CA and leaves in `files.dir()` (created 0700; every file 0600).
pub fn create(files: &DaskFiles) -> Result<(), CertError> {
    let dir = files.dir();
    DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })?;
    let write = |path: std::path::PathBuf, text: String| {
        write_private(&path, text.as_bytes()).map_err(|source| CertError::Write { path, source })
    };
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write(files.ca(), ca_cert.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    for role in Role::ALL {
        let key = KeyPair::generate()?;
        let cert = leaf_params(role)?.signed_by(&key, &issuer)?;
        write(files.key(role), key.serialize_pem())?;
        write(files.cert(role), cert.pem())?;
    }
    // `issuer` (the CA's key) is dropped here, unwritten.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn every_file_is_private_and_the_ca_key_is_not_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let files = DaskFiles {
            dir: tmp.path().join("dask"),
        };
        create(&files).expect("certs");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(files.dir()), 0o700);
        let mut names: Vec<String> = std::fs::read_dir(files.dir())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ca.pem",
                "client.key",
                "client.pem",
                "scheduler.key",
                "scheduler.pem",
                "worker.key",
                "worker.pem"
            ]
        );
        for n in &names {
            assert_eq!(mode(&files.dir().join(n)), 0o600, "{n}");
        }
        let ca = std::fs::read_to_string(files.ca()).expect("ca");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        let key = std::fs::read_to_string(files.key(Role::Client)).expect("key");
        assert!(key.contains("PRIVATE KEY"), "{key}");
    }
}
