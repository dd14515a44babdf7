//! The server's long-term identity: an RSA-3072 key kept as PKCS#8 PEM in the data
//! directory, and its fingerprint in the form `ssh-keygen -l` prints.
//!
//! Invariants: the key file is created with mode 0600 and synced before use; an existing
//! key is reused, never replaced; the RSA key only ever *signs* (RSA-PSS-SHA256) — it never
//! decrypts anything a peer sent, so the server is no decryption oracle (Marvin attack).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64ct::{Base64Unpadded, Encoding};
use rsa::PrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pss::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner, Verifier};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

use crate::error::ChannelError;

/// Size of a newly generated server key, in bits (NIST SP 800-57: 128-bit security).
pub const RSA_KEY_BITS: usize = 3072;

/// Smallest server key a client accepts, in bits.
pub const MIN_RSA_KEY_BITS: usize = 3072;

/// Largest server key a client accepts, in bits: bounds the cost of verifying.
pub const MAX_RSA_KEY_BITS: usize = 4096;

/// File name of the key inside the data directory.
pub const KEY_FILE_NAME: &str = "server_key.pem";

/// The `SHA256:` fingerprint of a SubjectPublicKeyInfo DER, as `ssh-keygen -l` shows keys.
pub fn fingerprint(spki_der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        Base64Unpadded::encode_string(&crate::channel::keys::sha256(&[spki_der]))
    )
}

/// Creates `dir` (and its parents) if missing; a new directory gets mode 0700, since it
/// holds the private key and the password hashes.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The server's signing key and what clients see of it.
pub struct ServerIdentity {
    signing_key: SigningKey<Sha256>,
    spki_der: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// What happened to the key file when the identity was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A new key was generated and written.
    Generated,
    /// The existing key file was read.
    Loaded,
    /// The existing key file was read, but other users can read it too (warn the operator).
    LoadedWithLoosePermissions,
}

impl ServerIdentity {
    /// An identity from a private key.
    pub fn from_private_key(key: PrivateKey) -> io::Result<Self> {
        let signing_key = SigningKey::<Sha256>::new(key);
        let spki_der = signing_key
            .as_ref()
            .to_public_key()
            .to_public_key_der()
            .map_err(|err| io::Error::other(format!("cannot encode public key: {err}")))?
            .as_bytes()
            .to_vec();
        let fingerprint = fingerprint(&spki_der);
        Ok(Self {
            signing_key,
            spki_der,
            fingerprint,
        })
    }

    /// An identity from PKCS#8 PEM text.
    pub fn from_pkcs8_pem(pem: &str) -> io::Result<Self> {
        let key = PrivateKey::from_pkcs8_pem(pem)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("bad PKCS#8 key: {err}")))?;
        Self::from_private_key(key)
    }

    /// Generates a fresh RSA-3072 identity (takes a second or more).
    pub fn generate() -> io::Result<Self> {
        let key = PrivateKey::new(&mut crate::rng::os_rng(), RSA_KEY_BITS)
            .map_err(|err| io::Error::other(format!("RSA key generation failed: {err}")))?;
        Self::from_private_key(key)
    }

    /// The key's path inside `data_dir`.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE_NAME)
    }

    /// Loads the key from `data_dir`, or generates and stores one (mode 0600) if none exists.
    pub fn load_or_create(data_dir: &Path) -> io::Result<(Self, KeyOrigin)> {
        create_private_dir(data_dir)?;
        let path = Self::key_path(data_dir);
        match fs::read_to_string(&path).map(zeroize::Zeroizing::new) {
            Ok(pem) => {
                let mode = fs::metadata(&path)?.permissions().mode();
                let identity = Self::from_pkcs8_pem(&pem)?;
                let origin = if mode & 0o077 != 0 {
                    KeyOrigin::LoadedWithLoosePermissions
                } else {
                    KeyOrigin::Loaded
                };
                Ok((identity, origin))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate()?;
                identity.write_pem(&path)?;
                Ok((identity, KeyOrigin::Generated))
            }
            Err(err) => Err(err),
        }
    }

    /// Writes the private key as PKCS#8 PEM to a new file with mode 0600, then syncs the
    /// file and its directory so the key survives a crash.
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        let pem = self
            .signing_key
            .as_ref()
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| io::Error::other(format!("cannot encode private key: {err}")))?;
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The public key as SubjectPublicKeyInfo DER (what the ServerHello carries).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The `SHA256:` fingerprint of the public key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs `message` with RSA-PSS-SHA256 (salt length 32) using the OS RNG.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.sign_with_rng(&mut crate::rng::os_rng(), message)
    }

    /// Signs with a caller-supplied RNG (the protocol test vectors use a fixed one).
    pub fn sign_with_rng<R: rsa::rand_core::CryptoRng + ?Sized>(&self, rng: &mut R, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.signing_key.sign_with_rng(rng, message);
        rsa::signature::SignatureEncoding::to_vec(&signature)
    }
}

/// Verifies a server's RSA-PSS-SHA256 signature with the public key in `spki_der`, and
/// checks the key is RSA of an accepted size.
pub fn verify_server_signature(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), ChannelError> {
    let key = VerifyingKey::<Sha256>::from_public_key_der(spki_der).map_err(|_| ChannelError::BadServerKey)?;
    let bits = key.as_ref().n().bit_width() as usize;
    if !(MIN_RSA_KEY_BITS..=MAX_RSA_KEY_BITS).contains(&bits) {
        return Err(ChannelError::BadServerKey);
    }
    let signature = Signature::try_from(signature).map_err(|_| ChannelError::BadSignature)?;
    key.verify(message, &signature).map_err(|_| ChannelError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_refuses_an_rsa_key_smaller_than_3072_bits() {
        let small = PrivateKey::new(&mut crate::rng::os_rng(), 2048).unwrap();
        let identity = ServerIdentity::from_private_key(small).unwrap();
        let signature = identity.sign(b"message");
        assert!(matches!(
            verify_server_signature(identity.spki_der(), b"message", &signature),
            Err(ChannelError::BadServerKey)
        ));
    }

    #[test]
    fn a_valid_signature_verifies_and_a_changed_message_does_not() {
        let identity = ServerIdentity::from_pkcs8_pem(include_str!("../tests/fixtures/test_server_key.pem")).unwrap();
        let signature = identity.sign(b"message");
        verify_server_signature(identity.spki_der(), b"message", &signature).unwrap();
        assert!(matches!(
            verify_server_signature(identity.spki_der(), b"messagf", &signature),
            Err(ChannelError::BadSignature)
        ));
    }
}
