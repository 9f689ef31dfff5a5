//! `tracing` setup: an `EnvFilter` from `RUST_LOG` (default `info`), text for people or
//! one JSON object per line for production (`--log-format json`).

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Install the global subscriber. An invalid filter falls back to `info` and says so.
pub fn init(filter: &str, format: LogFormat) {
    let (env_filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(true);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if installed.is_err() {
        // Already installed (tests); keep the existing subscriber.
        return;
    }
    if let Some(e) = bad {
        tracing::warn!(filter, error = %e, "invalid RUST_LOG filter, using \"info\"");
    }
}
