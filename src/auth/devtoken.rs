//! `mc-service dev-token`: print a join token signed with the development key
//! (`docs/protocol.md` rule 16). Uses (and creates when absent) the same `--dev-dir` as
//! `mc-service --dev`, so the running dev server trusts what this prints.
//!
//! ```text
//! mc-service dev-token --meeting-id standup --user-id alice --role host --name Alice
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use clap::Args;

use super::devkeys::DevKeys;
use super::jwt::{Role, TokenClaims};

/// Longest token lifetime `dev-token` will mint (7 days).
const MAX_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest meeting id, user id or name accepted.
const MAX_ID_BYTES: usize = 256;

/// Print a signed development join token to stdout.
#[derive(Clone, Debug, Args)]
pub struct DevTokenArgs {
    /// Directory of the development keys (the same as `mc-service --dev --dev-dir`).
    #[arg(long, env = "MC_DEV_DIR", default_value = "./.mc-dev")]
    pub dev_dir: PathBuf,

    /// Meeting the token admits to (the `meeting_id` claim).
    #[arg(long, env = "MC_DEV_TOKEN_MEETING_ID")]
    pub meeting_id: String,

    /// User id (the `sub` claim).
    #[arg(long, env = "MC_DEV_TOKEN_USER_ID")]
    pub user_id: String,

    /// Role in the meeting.
    #[arg(
        long,
        env = "MC_DEV_TOKEN_ROLE",
        value_enum,
        default_value = "participant"
    )]
    pub role: Role,

    /// Display name (the `name` claim).
    #[arg(long, env = "MC_DEV_TOKEN_NAME")]
    pub name: Option<String>,

    /// Lifetime of the token in seconds (1..=604800).
    #[arg(long, env = "MC_DEV_TOKEN_TTL_SECS", default_value = "3600")]
    pub ttl_secs: u64,

    /// `aud` claim; defaults to the server's --jwt-audience when set in the environment.
    #[arg(long, env = "MC_JWT_AUDIENCE")]
    pub audience: Option<String>,

    /// `iss` claim; defaults to the server's --jwt-issuer when set in the environment.
    #[arg(long, env = "MC_JWT_ISSUER")]
    pub issuer: Option<String>,
}

/// Mint the token `args` describe, issued at `now`.
pub fn mint(args: &DevTokenArgs, now: SystemTime) -> anyhow::Result<String> {
    for (what, value) in [
        ("--meeting-id", &args.meeting_id),
        ("--user-id", &args.user_id),
    ] {
        if value.is_empty() || value.len() > MAX_ID_BYTES {
            bail!("{what} must be 1 to {MAX_ID_BYTES} bytes");
        }
    }
    if args.name.as_ref().is_some_and(|n| n.len() > MAX_ID_BYTES) {
        bail!("--name must be at most {MAX_ID_BYTES} bytes");
    }
    if !(1..=MAX_TTL_SECS).contains(&args.ttl_secs) {
        bail!("--ttl-secs must be between 1 and {MAX_TTL_SECS}");
    }
    let keys = DevKeys::load_or_create(&args.dev_dir).with_context(|| {
        format!(
            "cannot load or create the dev keys in {}",
            args.dev_dir.display()
        )
    })?;
    let mut claims = TokenClaims::meeting(
        &args.user_id,
        &args.meeting_id,
        args.role,
        now,
        Duration::from_secs(args.ttl_secs),
    );
    claims.name = args.name.clone();
    claims.aud = args.audience.clone();
    claims.iss = args.issuer.clone();
    Ok(keys.mint_token(&claims))
}

/// The `dev-token` subcommand: print the token and a newline to stdout.
pub fn run(args: DevTokenArgs) -> anyhow::Result<()> {
    let token = mint(&args, SystemTime::now())?;
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwks::Jwks;
    use crate::auth::jwks_tests::scratch;
    use crate::auth::jwt::{JwtVerifier, VerifierConfig};
    use std::sync::Arc;

    fn args(dir: PathBuf) -> DevTokenArgs {
        DevTokenArgs {
            dev_dir: dir,
            meeting_id: "standup".into(),
            user_id: "bob".into(),
            role: Role::Participant,
            name: Some("Bob".into()),
            ttl_secs: 3600,
            audience: Some("mc".into()),
            issuer: None,
        }
    }

    #[test]
    fn mints_a_token_the_dev_server_accepts() {
        let dir = scratch("devtoken");
        let now = SystemTime::now();
        let token = mint(&args(dir.clone()), now).unwrap();
        let keys = DevKeys::load_or_create(&dir).unwrap();
        let jwks = Jwks::parse(&std::fs::read(keys.jwks_path()).unwrap()).unwrap();
        let config = VerifierConfig {
            audience: Some("mc".into()),
            ..VerifierConfig::default()
        };
        let claims = JwtVerifier::new(config, Arc::new(jwks))
            .verify(&token, "standup", now)
            .unwrap();
        assert_eq!(claims.sub, "bob");
        assert_eq!(claims.name.as_deref(), Some("Bob"));
        assert_eq!(claims.exp - claims.iat, 3600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_bad_arguments() {
        let dir = scratch("devtoken-bad");
        let now = SystemTime::now();
        let mut a = args(dir.clone());
        a.ttl_secs = 0;
        assert!(mint(&a, now).is_err());
        let mut a = args(dir.clone());
        a.meeting_id.clear();
        assert!(mint(&a, now).is_err());
        let mut a = args(dir.clone());
        a.user_id = "u".repeat(300);
        assert!(mint(&a, now).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_from_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: DevTokenArgs,
        }
        let cli = Cli::try_parse_from([
            "dev-token",
            "--dev-dir",
            "/tmp/x",
            "--meeting-id",
            "m",
            "--user-id",
            "u",
            "--role",
            "host",
            "--ttl-secs",
            "60",
        ])
        .unwrap();
        assert_eq!(cli.args.role, Role::Host);
        assert_eq!(cli.args.ttl_secs, 60);
        assert!(Cli::try_parse_from([
            "dev-token",
            "--meeting-id",
            "m",
            "--user-id",
            "u",
            "--role",
            "admin"
        ])
        .is_err());
    }
}
