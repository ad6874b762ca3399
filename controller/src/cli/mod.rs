//! The `ferrolb` command line: offline tools over configuration files.
//!
//! Each subcommand is one variant of [`Command`] and one module with an
//! `Args` struct and a `run` function; adding one touches nothing else.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

pub mod convert;
pub mod crds;
pub mod plan;
pub mod status;
pub mod validate;

/// `ferrolb`: check and convert MetalLB-compatible configuration offline.
#[derive(Debug, Parser)]
#[command(name = "ferrolb", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: the workspace version and the git commit (the shell's).
pub use ferrolb_shell::startup::VERSION;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check ConfigMap and/or metallb.io/v1beta1 files: prints `ok: N pools, M peers`, or every error (exit 0, 1, 2 or 3: see `validate --help`).
    Validate(validate::Args),
    /// Print the metallb.io/v1beta1 objects equivalent to a ConfigMap.
    Convert(convert::Args),
    /// Print the CustomResourceDefinitions ferrolb serves (manifests/crds.yaml).
    Crds(crds::Args),
    /// Show which IPs Services would get under a config, or why not (offline, same allocator as the controller).
    Plan(plan::Args),
    /// Show each LoadBalancer Service's IPs, pool and announcing nodes, or why it has none (reads the cluster; exit 1 when some is not announced).
    Status(status::Args),
}

impl Command {
    /// Run the subcommand.
    pub fn run(self, io: &mut Io<'_>) -> Exit {
        match self {
            Command::Validate(args) => validate::run(&args, io),
            Command::Convert(args) => convert::run(&args, io),
            Command::Crds(args) => crds::run(&args, io),
            Command::Plan(args) => plan::run(&args, io),
            Command::Status(args) => status::run(&args, io),
        }
    }
}

/// Exit status of a subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// The configuration is invalid (every error was printed).
    Invalid,
    /// Unreadable input, bad usage, or output that could not be written.
    Usage,
    /// `plan`: some Service would get no IP.
    NoIp,
    /// `plan`: the config would be refused as stale (it orphans assigned IPs).
    Refused,
    /// `validate`: valid, but with a warning (a ConfigMap the controller does not read).
    Warning,
    /// `status`: some Service shown has no IP or no announcer (or a BGP session is down).
    Unannounced,
}

impl Exit {
    /// The process exit code: 0, 1 or 2 (`plan` also 3 or 4, `validate` also 3).
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Invalid | Exit::Unannounced => 1,
            Exit::Usage => 2,
            Exit::NoIp | Exit::Warning => 3,
            Exit::Refused => 4,
        }
    }
}

/// The standard streams, passed in so subcommands stay testable.
pub struct Io<'a> {
    /// Standard input (for `-`).
    pub stdin: &'a mut dyn Read,
    /// Results.
    pub stdout: &'a mut dyn Write,
    /// Errors.
    pub stderr: &'a mut dyn Write,
}

impl Io<'_> {
    /// Report a problem that is not a configuration error (exit 2).
    pub fn fail(&mut self, message: &str) -> Exit {
        // Nothing more can be done when stderr itself is gone.
        let _ = writeln!(self.stderr, "ferrolb: {message}");
        Exit::Usage
    }

    /// Print configuration errors, one per line (exit 1).
    pub fn invalid(&mut self, errors: &ferrolb_config::ConfigErrors) -> Exit {
        for e in errors.iter() {
            if writeln!(self.stderr, "{e}").is_err() {
                return Exit::Usage;
            }
        }
        Exit::Invalid
    }

    /// Write the result to stdout.
    pub fn out(&mut self, text: &str) -> Exit {
        match self
            .stdout
            .write_all(text.as_bytes())
            .and_then(|()| self.stdout.flush())
        {
            Ok(()) => Exit::Ok,
            Err(e) => self.fail(&format!("cannot write output: {e}")),
        }
    }
}

/// How an input is named in messages: its path, or `<stdin>` for `-`.
pub fn input_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Read every input as UTF-8 text; `-` is standard input (at most once).
pub fn read_inputs(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
) -> Result<Vec<(String, String)>, String> {
    if paths
        .iter()
        .filter(|p| p.as_path() == Path::new("-"))
        .count()
        > 1
    {
        return Err("standard input (-) can be read only once".to_string());
    }
    paths
        .iter()
        .map(|path| {
            let name = input_name(path);
            let text = if path.as_path() == Path::new("-") {
                let mut text = String::new();
                stdin
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{name}: {e}"))?;
                text
            } else {
                std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?
            };
            Ok((name, text))
        })
        .collect()
}
