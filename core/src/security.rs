//! The cluster's secrets and how peers prove them.
//!
//! - [`Secret`]: 32 random bytes per cluster in a 0600 file; never in argv, the environment,
//!   logs or `Debug` output.
//! - [`ServerIdentity`]: the coordinator's self-signed certificate and key (rcgen), made at
//!   start and kept in memory; its SHA-256 [`Fingerprint`] is published in `coordinator.json`.
//! - [`PinnedServerVerifier`]: a client accepts exactly the pinned certificate, and still
//!   checks the handshake signatures, so only the holder of the key can answer.
//! - [`auth_proof`]: HMAC-SHA256 keyed with the secret over keying material exported from the
//!   TLS session. The pin authenticates the coordinator to the client; the proof authenticates
//!   the client to the coordinator, and it is bound to that one connection: a relay that
//!   forwards it on its own connection to the coordinator has different keying material.
//!
//! Only the ring provider is used, installed explicitly in each config rather than relying on
//! a process-wide default.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Length of the cluster secret in bytes.
pub const SECRET_LEN: usize = 32;

/// TLS exporter label of the auth proof (RFC 5705 labels start with `EXPORTER`). The `v1`
/// changes if the proof's construction ever does.
pub const AUTH_EXPORTER_LABEL: &[u8] = b"EXPORTER-corral-auth-v1";

/// The name clients ask for and the certificate carries. Never checked against DNS: the
/// certificate is pinned by fingerprint, so the name only has to be consistent.
pub const SERVER_NAME: &str = "corral-coordinator";

type HmacSha256 = Hmac<Sha256>;

/// Errors about secrets, certificates and fingerprints, with the path when there is one.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("a secret already exists at {path}; corral never overwrites one")]
    SecretExists { path: PathBuf },
    #[error("no secret at {path}")]
    SecretMissing { path: PathBuf },
    #[error(
        "secret file {path} is accessible by group or others (mode {mode:03o}); anyone who \
         could read it could join the cluster. Fix: chmod 600 {path}, and create a new cluster \
         if others may have read it"
    )]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error("secret file {path} belongs to uid {owner}, not to you (uid {uid}); refusing it")]
    SecretOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("secret file {path} is not a regular file")]
    SecretNotAFile { path: PathBuf },
    #[error("secret file {path} holds {len} bytes, expected {SECRET_LEN}; it is damaged")]
    SecretLength { path: PathBuf, len: usize },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
    #[error("generating the coordinator certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{text:?} is not a SHA-256 fingerprint (64 hex digits)")]
    BadFingerprint { text: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SecurityError + '_ {
    move |source| SecurityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The cluster secret. Deliberately not `Clone`, `Display` or `Serialize`: it lives in its
/// file and in one place in memory; share it with `Arc`.
pub struct Secret([u8; SECRET_LEN]);

impl Secret {
    /// 32 bytes from the operating system's generator.
    pub fn generate() -> Result<Self, SecurityError> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(|e| SecurityError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Generates a secret and writes it to a new file at `path`. The file is created with
    /// `O_EXCL` and mode 0600 in the same `open`, so it is never readable by others, not even
    /// for an instant, and an existing secret is never replaced.
    pub fn create_file(path: &Path) -> Result<Self, SecurityError> {
        let secret = Self::generate()?;
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(SecurityError::SecretExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let written = f.write_all(&secret.0).and_then(|()| f.sync_all());
        if let Err(e) = written {
            // A truncated secret would be refused later anyway; do not leave it around.
            let _ = std::fs::remove_file(path);
            return Err(io_err(path)(e));
        }
        Ok(secret)
    }

    /// Reads the secret at `path`, refusing a file that is group/world accessible, not ours,
    /// not a regular file (symlinks are not followed), or not exactly 32 bytes. The checks are
    /// made on the opened file, so the file cannot be swapped between check and read.
    pub fn load(path: &Path) -> Result<Self, SecurityError> {
        let mut f = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SecurityError::SecretMissing {
                    path: path.to_owned(),
                });
            }
            // O_NOFOLLOW on a symlink gives ELOOP.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(SecurityError::SecretNotAFile {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let meta = f.metadata().map_err(io_err(path))?;
        if !meta.is_file() {
            return Err(SecurityError::SecretNotAFile {
                path: path.to_owned(),
            });
        }
        let uid = crate::cluster_dir::current_uid().map_err(io_err(path))?;
        if meta.uid() != uid {
            return Err(SecurityError::SecretOwner {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecurityError::SecretPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        // Read one byte more than needed to notice a too-long file.
        let mut buf = Vec::with_capacity(SECRET_LEN + 1);
        (&mut f)
            .take(SECRET_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(path))?;
        let bytes: [u8; SECRET_LEN] =
            buf.as_slice()
                .try_into()
                .map_err(|_| SecurityError::SecretLength {
                    path: path.to_owned(),
                    len: buf.len(),
                })?;
        buf.fill(0);
        Ok(Self(bytes))
    }

    /// Constant-time equality (for tests and diagnostics; never compare secrets with `==`).
    pub fn ct_eq(&self, other: &Secret) -> bool {
        // Comparing the HMACs of a fixed message is constant-time via `verify_slice`.
        let tag = hmac_tag(other, b"corral-secret-eq");
        let mut mac = keyed(self);
        mac.update(b"corral-secret-eq");
        mac.verify_slice(&tag).is_ok()
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    // Best effort without `unsafe`: overwrite, and let `black_box` keep the write from being
    // optimized away.
    fn drop(&mut self) {
        self.0 = [0; SECRET_LEN];
        std::hint::black_box(&self.0);
    }
}

fn keyed(secret: &Secret) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it panic-free.
    HmacSha256::new_from_slice(&secret.0)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

fn hmac_tag(secret: &Secret, msg: &[u8]) -> [u8; 32] {
    let mut mac = keyed(secret);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The client's proof of the secret for one connection: HMAC-SHA256(secret, keying material).
/// `keying_material` must be exported from the connection's TLS session with
/// [`AUTH_EXPORTER_LABEL`] (see `transport`), which is what binds the proof to it.
pub fn auth_proof(secret: &Secret, keying_material: &[u8; 32]) -> [u8; 32] {
    hmac_tag(secret, keying_material)
}

/// Checks a proof in constant time.
pub fn verify_auth_proof(secret: &Secret, keying_material: &[u8; 32], proof: &[u8]) -> bool {
    let mut mac = keyed(secret);
    mac.update(keying_material);
    mac.verify_slice(proof).is_ok()
}

/// SHA-256 of a DER certificate: what clients pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as in `coordinator.json`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits (either case; `:` separators as printed by openssl are allowed).
    pub fn from_hex(text: &str) -> Result<Self, SecurityError> {
        let bad = || SecurityError::BadFingerprint {
            text: text.chars().take(100).collect(),
        };
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// The coordinator's certificate and private key, generated by a cluster's first coordinator
/// and kept (0600) in the cluster directory, so a coordinator that takes over presents the
/// certificate workers and clients pinned.
pub struct ServerIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: Fingerprint,
}

impl ServerIdentity {
    /// A fresh ECDSA P-256 self-signed certificate for [`SERVER_NAME`].
    pub fn generate() -> Result<Self, SecurityError> {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])?;
        let cert = ck.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        let fingerprint = Fingerprint::of_der(&cert);
        Ok(Self {
            cert,
            key,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The certificate and the key as one blob: the certificate's length (u32, big-endian),
    /// the certificate (DER), the key (PKCS#8 DER).
    pub fn to_bytes(&self) -> Vec<u8> {
        let cert = self.cert.as_ref();
        let mut out = Vec::with_capacity(4 + cert.len() + self.key.secret_pkcs8_der().len());
        out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
        out.extend_from_slice(cert);
        out.extend_from_slice(self.key.secret_pkcs8_der());
        out
    }

    /// The identity [`ServerIdentity::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let cert = bytes.get(4..4 + len)?;
        let key = bytes.get(4 + len..)?;
        if cert.is_empty() || key.is_empty() {
            return None;
        }
        let cert = CertificateDer::from(cert.to_vec());
        Some(Self {
            fingerprint: Fingerprint::of_der(&cert),
            cert,
            key: PrivatePkcs8KeyDer::from(key.to_vec()),
        })
    }

    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The crypto provider of every corral TLS config: ring, chosen explicitly.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client's certificate verifier: the server must present exactly the pinned certificate
/// (by SHA-256 of its DER), and must sign the handshake with that certificate's key —
/// pinning alone would let anyone replaying the public certificate pass the first check.
/// Name, validity dates and chain are deliberately not checked: the certificate is
/// self-signed and trust comes from the pin, which arrives through the 0700 cluster directory.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
    /// What a mismatching server presented, so the caller can report it precisely.
    presented: Mutex<Option<Fingerprint>>,
}

impl PinnedServerVerifier {
    pub fn new(expected: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected,
            provider,
            presented: Mutex::new(None),
        }
    }

    /// The fingerprint of a certificate this verifier rejected, if any.
    pub fn mismatch(&self) -> Option<Fingerprint> {
        self.presented.lock().map(|g| *g).unwrap_or(None)
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity);
        if got == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut g) = self.presented.lock() {
                *g = Some(got);
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn secret_file_is_created_0600_and_exclusive() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("secret");
        let s = Secret::create_file(&p).expect("create");
        let meta = fs::metadata(&p).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), SECRET_LEN as u64);
        assert!(matches!(
            Secret::create_file(&p),
            Err(SecurityError::SecretExists { .. })
        ));
        assert!(Secret::load(&p).expect("load").ct_eq(&s));
    }

    #[test]
    fn secret_with_loose_perms_or_wrong_size_is_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("secret");
        Secret::create_file(&p).expect("create");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Secret::load(&p).expect_err("0644");
        assert!(matches!(
            err,
            SecurityError::SecretPermissions { mode: 0o644, .. }
        ));
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", p.display()))
        );

        let short = t.path().join("short");
        fs::write(&short, [1u8; 31]).expect("write");
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            Secret::load(&short),
            Err(SecurityError::SecretLength { len: 31, .. })
        ));
        let long = t.path().join("long");
        fs::write(&long, [1u8; 33]).expect("write");
        fs::set_permissions(&long, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            Secret::load(&long),
            Err(SecurityError::SecretLength { len: 33, .. })
        ));

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&short, &link).expect("symlink");
        assert!(matches!(
            Secret::load(&link),
            Err(SecurityError::SecretNotAFile { .. })
        ));
        assert!(matches!(
            Secret::load(&t.path().join("none")),
            Err(SecurityError::SecretMissing { .. })
        ));
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::from_bytes([0xab; 32]);
        let dbg = format!("{s:?} {:?}", Some(&s));
        assert!(!dbg.contains("ab"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
    }

    #[test]
    fn proof_depends_on_secret_and_keying_material() {
        let a = Secret::from_bytes([1; 32]);
        let b = Secret::from_bytes([2; 32]);
        let km1 = [9u8; 32];
        let km2 = [8u8; 32];
        let p = auth_proof(&a, &km1);
        assert!(verify_auth_proof(&a, &km1, &p));
        assert!(!verify_auth_proof(&b, &km1, &p));
        assert!(!verify_auth_proof(&a, &km2, &p));
        assert!(!verify_auth_proof(&a, &km1, &p[..31]));
        assert!(!verify_auth_proof(&a, &km1, &[]));
        assert!(a.ct_eq(&Secret::from_bytes([1; 32])));
        assert!(!a.ct_eq(&b));
    }

    #[test]
    fn fingerprint_hex_round_trip() {
        let id = ServerIdentity::generate().expect("cert");
        let fp = *id.fingerprint();
        assert_eq!(fp, Fingerprint::of_der(id.certificate()));
        let hex = fp.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(Fingerprint::from_hex(&hex).expect("parse"), fp);
        assert_eq!(
            Fingerprint::from_hex(&hex.to_uppercase()).expect("parse upper"),
            fp
        );
        for bad in ["", "zz", &hex[..62], &format!("{hex}00"), &"é".repeat(32)] {
            assert!(Fingerprint::from_hex(bad).is_err(), "{bad}");
        }
        assert!(!format!("{id:?}").contains("key: ["));
    }

    #[test]
    fn verifier_accepts_only_the_pin() {
        let id = ServerIdentity::generate().expect("cert");
        let other = ServerIdentity::generate().expect("cert");
        let v = PinnedServerVerifier::new(*id.fingerprint(), crypto_provider());
        let name = ServerName::try_from(SERVER_NAME).expect("name");
        assert!(
            v.verify_server_cert(id.certificate(), &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(v.mismatch().is_none());
        assert!(
            v.verify_server_cert(other.certificate(), &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert_eq!(v.mismatch(), Some(*other.fingerprint()));
    }
}
