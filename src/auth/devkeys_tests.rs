//! Dev-key tests: creation and reuse, file modes, PKCS#8 v1 on disk (and v2 read and
//! upgraded), interop with OpenSSL and Python's `cryptography`, the RFC 7638 kid.

use super::*;
use crate::auth::jwks_tests::scratch;
use crate::auth::jwt::{JwtVerifier, VerifierConfig};
use std::sync::Arc;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_then_reuses() {
    let dir = scratch("devkeys").join("nested");
    let first = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(BINDING_SECRET_FILE)), 0o600);
    let pem = fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    assert!(first.kid().starts_with("dev-"));
    assert!(first.binding_secret().len() >= 32);

    // jwks.json holds exactly the public key under the kid.
    let text = fs::read(first.jwks_path()).unwrap();
    let jwks = Jwks::parse(&text).unwrap();
    assert_eq!(jwks.kids(), [first.kid()]);
    assert_eq!(jwks.get(first.kid()), Some(&first.verifying_key()));
    assert!(!String::from_utf8_lossy(&text).contains("\"d\""));

    // A second run reuses everything.
    let second = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(second.kid(), first.kid());
    assert_eq!(second.binding_secret(), first.binding_secret());

    // A deleted or stale jwks.json is rewritten from the key.
    fs::write(first.jwks_path(), "{}").unwrap();
    let third = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(
        Jwks::parse(&fs::read(third.jwks_path()).unwrap())
            .unwrap()
            .kids(),
        [first.kid()]
    );
    let _ = fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn minted_tokens_verify_against_the_written_jwks() {
    let dir = scratch("devkeys-mint");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let now = SystemTime::now();
    let token = keys.mint_meeting_token("m1", "alice", Role::Host, now, Duration::from_secs(60));
    let jwks = Jwks::parse(&fs::read(keys.jwks_path()).unwrap()).unwrap();
    let v = JwtVerifier::new(VerifierConfig::default(), Arc::new(jwks));
    let claims = v.verify(&token, "m1", now).unwrap();
    assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Host));
    assert_eq!(claims.kid, keys.kid());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_files_are_reported_not_replaced() {
    let dir = scratch("devkeys-corrupt");
    fs::write(dir.join(SIGNING_KEY_FILE), "garbage").unwrap();
    assert!(matches!(
        DevKeys::load_or_create(&dir),
        Err(DevKeysError::BadSigningKey(_))
    ));
    assert_eq!(
        fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap(),
        "garbage"
    );
    fs::remove_file(dir.join(SIGNING_KEY_FILE)).unwrap();
    fs::write(dir.join(BINDING_SECRET_FILE), "c2hvcnQ=").unwrap();
    assert!(matches!(
        DevKeys::load_or_create(&dir),
        Err(DevKeysError::BadSecret { .. })
    ));
    let _ = fs::remove_dir_all(&dir);
}

/// The DER inside a PEM document.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

#[test]
fn signing_key_is_written_as_pkcs8_v1() {
    let dir = scratch("devkeys-v1");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let der = pem_der(&fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap());
    // RFC 8410 §7: SEQUENCE { INTEGER 0, AlgorithmIdentifier { 1.3.101.112 },
    // OCTET STRING { OCTET STRING (32 bytes) } } and nothing after it.
    let (head, secret) = der.split_at(16);
    assert_eq!(
        head,
        [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20
        ]
    );
    assert_eq!(secret.len(), 32);
    let again = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(again.verifying_key(), keys.verifying_key());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_v2_key_is_read_and_rewritten_as_v1() {
    let dir = scratch("devkeys-v2");
    fs::create_dir_all(&dir).unwrap();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    // ed25519-dalek's own encoding embeds the public key: PKCS#8 v2.
    let v2 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    assert_eq!(pem_der(&v2)[4], 0x01, "version 1 means v2");
    fs::write(dir.join(SIGNING_KEY_FILE), v2.as_bytes()).unwrap();
    let keys = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(keys.verifying_key(), key.verifying_key());
    assert_eq!(keys.kid(), dev_kid(&key.verifying_key()));
    let rewritten = fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap();
    assert_eq!(pem_der(&rewritten).len(), 48, "v1: no public key");
    assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
    assert_eq!(DevKeys::load_or_create(&dir).unwrap().kid(), keys.kid());

    // A v2 file whose public key is not the private key's is refused, untouched.
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let forged = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: Some(ed25519_dalek::pkcs8::PublicKeyBytes(
            other.verifying_key().to_bytes(),
        )),
    }
    .to_pkcs8_pem(LineEnding::LF)
    .unwrap();
    fs::write(dir.join(SIGNING_KEY_FILE), forged.as_bytes()).unwrap();
    assert!(matches!(
        DevKeys::load_or_create(&dir),
        Err(DevKeysError::BadSigningKey(_))
    ));
    assert_eq!(
        fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap(),
        forged.as_str()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// OpenSSL 3.0 loads the written key (`openssl pkey`) and derives the public key
/// that `jwks.json` publishes. OpenSSL must be installed: missing is a failure.
#[test]
fn openssl_loads_the_signing_key() {
    let dir = scratch("devkeys-openssl");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let pem = dir.join(SIGNING_KEY_FILE);
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install it (Debian: apt-get install openssl)")
            })
    };
    let path = pem.to_str().unwrap();
    let check = run(&["pkey", "-in", path, "-noout"]);
    assert!(
        check.status.success(),
        "openssl pkey -in {path} -noout failed: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let public = run(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    assert!(
        public.status.success(),
        "{}",
        String::from_utf8_lossy(&public.stderr)
    );
    // SubjectPublicKeyInfo DER: 12 bytes of header, then the 32-byte key.
    assert_eq!(
        public.stdout.get(12..),
        Some(keys.verifying_key().as_bytes().as_slice())
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Python's `cryptography` loads the written key and derives the same public key.
/// Required when `MC_REQUIRE_PY_CRYPTOGRAPHY=1` (`scripts/test` sets it); otherwise a
/// machine without python3 or the module says so on stderr and checks nothing more.
#[test]
fn python_cryptography_loads_the_signing_key() {
    let required = std::env::var("MC_REQUIRE_PY_CRYPTOGRAPHY").as_deref() == Ok("1");
    let dir = scratch("devkeys-python");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
        print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.join(SIGNING_KEY_FILE))
        .output();
    let missing = match &out {
        Err(e) => Some(format!("cannot run python3: {e}")),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named 'cryptography'") => {
            Some("python3 has no cryptography module".to_string())
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(
            !required,
            "MC_REQUIRE_PY_CRYPTOGRAPHY=1 but {why} (Debian: apt-get install python3-cryptography)"
        );
        eprintln!(
            "skipped the Python check: {why}; set MC_REQUIRE_PY_CRYPTOGRAPHY=1 to require it"
        );
        let _ = fs::remove_dir_all(&dir);
        return;
    }
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "cryptography refused the key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        hex::encode(keys.verifying_key().as_bytes())
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // RFC 8037 Appendix A.3: the thumbprint of the A.2 public key.
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    assert_eq!(
        dev_kid(&key),
        "dev-kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn debug_hides_the_keys() {
    let dir = scratch("devkeys-debug");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let shown = format!("{keys:?}");
    assert!(!shown.contains(&keys.binding_secret().to_base64()));
    assert!(!shown.contains("signing"));
    let _ = fs::remove_dir_all(&dir);
}
