//! AuthConfig validation: production requirements, dev fallbacks, secret handling.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::config::*;
use super::devkeys::DevKeys;
use super::jwks::JwksSource;
use super::jwks_tests::scratch;
use super::secret::BindingSecret;

/// 32 bytes of 0x41, base64.
const SECRET_B64: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    auth: AuthConfig,
}

fn parse(args: &[&str]) -> AuthConfig {
    let mut argv = vec!["mc-service"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().auth
}

#[test]
fn production_requires_a_jwks_source_and_a_secret() {
    let e = parse(&[])
        .validate_with(false, Some(SECRET_B64))
        .unwrap_err();
    assert_eq!((e.flag, e.env), ("--jwks-path", "MC_JWKS_PATH"));
    assert!(e.to_string().contains("MC_JWKS_URL"), "{e}");

    let e = parse(&["--jwks-path", "/etc/mc/jwks.json"])
        .validate_with(false, None)
        .unwrap_err();
    assert_eq!(e.env, "MC_BINDING_TOKEN_SECRET_FILE");
    assert!(e.to_string().contains("MC_BINDING_TOKEN_SECRET "), "{e}");

    let v = parse(&["--jwks-path", "/etc/mc/jwks.json"])
        .validate_with(false, Some(SECRET_B64))
        .unwrap();
    assert_eq!(
        v.keys,
        TrustedKeys::Jwks(JwksSource::File(PathBuf::from("/etc/mc/jwks.json")))
    );
    assert!(!v.needs_dev_keys());
    let r = v.resolve(None).unwrap();
    assert_eq!(r.binding_secret.expose(), [0x41; 32]);
    assert_eq!(r.verifier.clock_skew, Duration::from_secs(5));
    assert_eq!(r.verifier.max_token_bytes, 8192);
}

#[test]
fn default_matches_the_flag_defaults() {
    let d = AuthConfig::default();
    let p = parse(&[]);
    assert_eq!(format!("{d:?}"), format!("{p:?}"));
}

#[test]
fn url_source_and_limits() {
    let v = parse(&[
        "--jwks-url",
        "http://ac.internal/.well-known/jwks.json",
        "--jwt-audience",
        "mc",
        "--jwt-issuer",
        "ac",
        "--jwt-clock-skew-secs",
        "2",
        "--jwks-refresh-min-interval-secs",
        "30",
    ])
    .validate_with(false, Some(SECRET_B64))
    .unwrap();
    assert!(matches!(v.keys, TrustedKeys::Jwks(JwksSource::Url(_))));
    assert_eq!(v.verifier.audience.as_deref(), Some("mc"));
    assert_eq!(v.refresh.min_interval, Duration::from_secs(30));

    let bad: &[(&[&str], &str)] = &[
        (&["--jwks-url", "https://x/jwks"], "MC_JWKS_URL"),
        (
            &["--jwks-path", "/a", "--jwks-url", "http://x/"],
            "MC_JWKS_PATH",
        ),
        (
            &["--jwks-path", "/a", "--jwt-clock-skew-secs", "3600"],
            "MC_JWT_CLOCK_SKEW_SECS",
        ),
        (
            &["--jwks-path", "/a", "--jwt-max-token-bytes", "10"],
            "MC_JWT_MAX_TOKEN_BYTES",
        ),
        (
            &["--jwks-path", "/a", "--jwt-audience", " "],
            "MC_JWT_AUDIENCE",
        ),
        (
            &["--jwks-path", "/a", "--jwks-refresh-min-interval-secs", "0"],
            "MC_JWKS_REFRESH_MIN_INTERVAL_SECS",
        ),
        (
            &["--jwks-path", "/a", "--jwks-refresh-interval-secs", "5"],
            "MC_JWKS_REFRESH_INTERVAL_SECS",
        ),
        (
            &["--jwks-path", "/a", "--jwks-fetch-timeout-ms", "1"],
            "MC_JWKS_FETCH_TIMEOUT_MS",
        ),
    ];
    for (args, env) in bad {
        let e = parse(args)
            .validate_with(false, Some(SECRET_B64))
            .unwrap_err();
        assert_eq!(e.env, *env, "{args:?}: {e}");
    }
}

#[test]
fn secret_from_env_or_file_never_both_never_short() {
    let dir = scratch("auth-config-secret");
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET_B64}\n")).unwrap();
    let file_arg = file.to_str().unwrap();

    let v = parse(&["--jwks-path", "/a", "--binding-token-secret-file", file_arg])
        .validate_with(false, None)
        .unwrap();
    assert_eq!(
        v.binding_secret,
        SecretFrom::Configured(BindingSecret::from_bytes(vec![0x41; 32]).unwrap())
    );
    let e = parse(&["--jwks-path", "/a", "--binding-token-secret-file", file_arg])
        .validate_with(false, Some(SECRET_B64))
        .unwrap_err();
    assert!(e.reason.contains("not both"), "{e}");

    let e = parse(&["--jwks-path", "/a"])
        .validate_with(false, Some("c2hvcnQ="))
        .unwrap_err();
    assert_eq!(e.env, "MC_BINDING_TOKEN_SECRET");
    assert!(
        !e.to_string().contains("c2hvcnQ"),
        "the secret is never echoed: {e}"
    );

    let e = parse(&[
        "--jwks-path",
        "/a",
        "--binding-token-secret-file",
        "/nonexistent/s",
    ])
    .validate_with(false, None)
    .unwrap_err();
    assert_eq!(e.flag, "--binding-token-secret-file");

    // There is no flag that takes the secret's value.
    let mut argv = vec!["mc-service", "--binding-token-secret", SECRET_B64];
    assert!(Cli::try_parse_from(argv.drain(..)).is_err());
    // And the validated settings never print it.
    let shown = format!("{v:?} {}", serde_json::to_string(&v).unwrap());
    assert!(
        !shown.contains(SECRET_B64) && !shown.contains("AAAA"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dev_mode_falls_back_to_dev_keys() {
    let v = parse(&[]).validate_with(true, None).unwrap();
    assert_eq!(v.keys, TrustedKeys::DevKeys);
    assert_eq!(v.binding_secret, SecretFrom::DevKeys);
    assert!(v.needs_dev_keys());
    assert!(v.clone().resolve(None).is_err());

    let dir = scratch("auth-config-dev");
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let r = v.resolve(Some(&keys)).unwrap();
    assert_eq!(r.jwks, JwksSource::File(keys.jwks_path()));
    assert_eq!(&r.binding_secret, keys.binding_secret());

    // Explicit settings win over the dev keys, even in dev mode.
    let v = parse(&["--jwks-path", "/a"])
        .validate_with(true, Some(SECRET_B64))
        .unwrap();
    assert!(!v.needs_dev_keys());
    let r = v.resolve(Some(&keys)).unwrap();
    assert_eq!(r.jwks, JwksSource::File(PathBuf::from("/a")));
    assert_ne!(&r.binding_secret, keys.binding_secret());
    let _ = std::fs::remove_dir_all(&dir);
}
