//! `ferrolb convert FILE`: the metallb.io/v1beta1 objects equivalent to a
//! ConfigMap, in the ConfigMap's namespace (default `metallb-system`).

use std::path::PathBuf;

use super::{Exit, Io, input_name, read_inputs};

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 converted; 1 invalid, no ConfigMap in the input \
(empty, or only metallb.io objects, which need no conversion), or metallb.io objects \
next to the ConfigMap; 2 unreadable input or bad usage"
)]
pub struct Args {
    /// A ConfigMap manifest or the bare text of its `config` key; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Give pool OLD the name NEW in the output (for pool names that cannot be
    /// object names: lowercase letters, digits, '-' and '.'); repeatable.
    #[arg(long, value_name = "OLD=NEW", value_parser = rename)]
    pub rename: Vec<(String, String)>,
}

/// `OLD=NEW` of `--rename`.
fn rename(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => {
            Ok((old.to_string(), new.to_string()))
        }
        _ => Err(format!("expected OLD=NEW, got {text:?}")),
    }
}

/// Print the objects as YAML (exit 0), or every error (exit 1).
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let text = match read_inputs(std::slice::from_ref(&args.file), io.stdin) {
        Ok(mut inputs) => inputs.pop().map(|(_, text)| text).unwrap_or_default(),
        Err(e) => return io.fail(&e),
    };
    match ferrolb_config::convert::convert_renaming(&text, &args.rename) {
        Ok(yaml) => io.out(&yaml),
        Err(errors) => io.invalid(&errors.within(&input_name(&args.file))),
    }
}
