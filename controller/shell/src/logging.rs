//! The daemon's log output: human-readable text (ANSI colours only when
//! stderr is a terminal) or one JSON object per line, on stderr.
//!
//! One set-up for both daemons, so that they log the same fields.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format` / `FERROLB_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level, `span`/`spans` when inside one.
    Json,
}

/// Install the global subscriber: level from `RUST_LOG` (default `info`),
/// events to stderr in `format`. A second call does nothing.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Already installed (a test, or a second call): keep that one.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}
