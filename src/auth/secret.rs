//! The MC's session-binding secret (docs/protocol.md "Session recovery"): the HKDF input
//! keying material of every binding token. Never printed: `Debug` and `Serialize` show
//! only that it is set and its length; the bytes leave only through
//! [`BindingSecret::expose`].

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Serialize;
use thiserror::Error;

/// Least accepted secret length, after base64 decoding.
pub const MIN_BINDING_SECRET_BYTES: usize = 32;
/// Length of a generated (dev) secret.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Most accepted secret length (a sanity bound on what a file may hold).
const MAX_BINDING_SECRET_BYTES: usize = 1024;

/// Standard base64, padding optional (operators produce it with `openssl rand -base64`).
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret was refused. Never contains the secret.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("is not valid base64")]
    NotBase64,
    #[error("decodes to {0} bytes; at least {MIN_BINDING_SECRET_BYTES} are required")]
    TooShort(usize),
    #[error("decodes to more than {MAX_BINDING_SECRET_BYTES} bytes")]
    TooLong,
}

/// The binding secret bytes. Zeroed on drop (best effort).
#[derive(Clone, PartialEq, Eq)]
pub struct BindingSecret(Box<[u8]>);

impl BindingSecret {
    /// Decode base64 text (surrounding whitespace ignored); ≥ 32 bytes required.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = LENIENT_B64
            .decode(text.trim())
            .map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(bytes)
    }

    /// Wrap raw bytes; ≥ 32 bytes required.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if bytes.len() < MIN_BINDING_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        if bytes.len() > MAX_BINDING_SECRET_BYTES {
            return Err(SecretError::TooLong);
        }
        Ok(Self(bytes.into_boxed_slice()))
    }

    /// A fresh random secret from the OS-seeded CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        rand::fill(bytes.as_mut_slice());
        Self(bytes.into_boxed_slice())
    }

    /// The secret bytes, for the HKDF in `auth::binding`. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Base64 text, for writing the dev secret file.
    pub(crate) fn to_base64(&self) -> String {
        LENIENT_B64.encode(&self.0)
    }
}

impl Drop for BindingSecret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

impl std::fmt::Debug for BindingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BindingSecret(<redacted, {} bytes>)", self.0.len())
    }
}

impl Serialize for BindingSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_bounds() {
        let s = BindingSecret::from_base64(&format!("  {}\n", "QUJD".repeat(11))).unwrap();
        assert_eq!(s.len(), 33);
        assert_eq!(
            BindingSecret::from_base64("QUJD"),
            Err(SecretError::TooShort(3))
        );
        assert_eq!(
            BindingSecret::from_base64("not base64!"),
            Err(SecretError::NotBase64)
        );
        let g = BindingSecret::generate();
        assert_eq!(BindingSecret::from_base64(&g.to_base64()).unwrap(), g);
        assert_ne!(BindingSecret::generate(), g);
    }

    #[test]
    fn never_printed() {
        let s = BindingSecret::from_bytes(vec![0x41; 40]).unwrap();
        let dbg = format!("{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        for shown in [dbg, json] {
            assert!(
                !shown.contains("AAAA") && !shown.contains("QUFB"),
                "{shown}"
            );
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
