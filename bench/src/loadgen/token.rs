//! Join tokens for the `connect --join`, `meeting` and `ramp` scenarios: EdDSA (Ed25519)
//! JWTs with a `kid`, carrying the claims of docs/protocol.md "Join token (JWT)" and rule 13.
//! The key is the dev dir's `signing-key.pem` (kid from its `jwks.json`, docs/protocol.md
//! rule 16) or `--signing-key` + `--kid`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Errors loading the key or minting.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no signing key: give --dev-dir DIR or --signing-key FILE --kid KID")]
    NoKey,
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not an Ed25519 PKCS#8 PEM key: {1}")]
    BadKey(PathBuf, String),
    #[error("no kid: give --kid or a jwks.json with a \"kid\"")]
    NoKid,
    #[error("signing: {0}")]
    Sign(String),
}

/// Token flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TokenArgs {
    /// Ed25519 PKCS#8 PEM private key that signs join tokens (overrides the dev dir's).
    #[arg(long, env = "LOADGEN_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Key id put in the JWT header (default: the first kid of <dev-dir>/jwks.json).
    #[arg(long, env = "LOADGEN_KID")]
    pub kid: Option<String>,
    /// Token lifetime in seconds.
    #[arg(long, env = "LOADGEN_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    token_type: &'static str,
    meeting_id: &'a str,
    role: &'a str,
    participant_type: &'static str,
    capabilities: [&'static str; 2],
    iat: u64,
    exp: u64,
    jti: String,
}

/// Mints join tokens.
pub struct Minter {
    key: EncodingKey,
    header: Header,
    ttl: u64,
}

impl Minter {
    /// Loads the key from `--signing-key`/`--kid` or the dev dir.
    pub fn load(args: &TokenArgs, dev_dir: Option<&Path>) -> Result<Self, TokenError> {
        let key_path = match (&args.signing_key, dev_dir) {
            (Some(p), _) => p.clone(),
            (None, Some(d)) => d.join("signing-key.pem"),
            (None, None) => return Err(TokenError::NoKey),
        };
        let pem = std::fs::read(&key_path).map_err(|e| TokenError::Read(key_path.clone(), e))?;
        let key = EncodingKey::from_ed_pem(&pem)
            .map_err(|e| TokenError::BadKey(key_path, e.to_string()))?;
        let kid = match (&args.kid, dev_dir) {
            (Some(k), _) => k.clone(),
            (None, Some(d)) => kid_from_jwks(&d.join("jwks.json"))?,
            (None, None) => return Err(TokenError::NoKid),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        Ok(Self {
            key,
            header,
            ttl: args.token_ttl.max(60),
        })
    }

    /// A token for `sub` in `meeting_id` with `role` ("host" | "participant").
    pub fn mint(&self, sub: &str, meeting_id: &str, role: &str) -> Result<String, TokenError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub,
            token_type: "meeting",
            meeting_id,
            role,
            participant_type: "member",
            capabilities: ["audio", "video"],
            iat,
            exp: iat + self.ttl,
            jti: format!("lg-{sub}-{}", rand::random::<u64>()),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }
}

fn kid_from_jwks(path: &Path) -> Result<String, TokenError> {
    let s = std::fs::read_to_string(path).map_err(|e| TokenError::Read(path.to_path_buf(), e))?;
    let v: serde_json::Value = serde_json::from_str(&s).map_err(|_| TokenError::NoKid)?;
    v.get("keys")
        .and_then(|k| k.as_array())
        .and_then(|a| a.iter().find_map(|k| k.get("kid").and_then(|x| x.as_str())))
        .map(str::to_string)
        .ok_or(TokenError::NoKid)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway Ed25519 key generated for this test only (RFC 8410 PKCS#8 layout).
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIANrNLZIId4mddBy8Vm5ZhqMm+pX6VMwB2ngeA0duiK9\n-----END PRIVATE KEY-----\n";

    #[test]
    fn mints_eddsa_token_with_kid_and_claims() {
        let dir = std::env::temp_dir().join(format!("lg-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("signing-key.pem"), PEM).unwrap();
        std::fs::write(
            dir.join("jwks.json"),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"dev-1","x":"AA"}]}"#,
        )
        .unwrap();
        let m = Minter::load(
            &TokenArgs {
                token_ttl: 600,
                ..Default::default()
            },
            Some(&dir),
        )
        .unwrap();
        let t = m.mint("user-7", "meet-1", "host").unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.alg, Algorithm::EdDSA);
        assert_eq!(h.kid.as_deref(), Some("dev-1"));
        let payload = t.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["meeting_id"], "meet-1");
        assert_eq!(claims["token_type"], "meeting");
        assert_eq!(claims["role"], "host");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Minter::load(&TokenArgs::default(), None),
            Err(TokenError::NoKey)
        ));
    }
}
