//! `ferrolb convert FILE`: the metallb.io/v1beta1 objects equivalent to a
//! ConfigMap, in the ConfigMap's namespace (default `metallb-system`).

use std::path::PathBuf;

use super::{Exit, Io, input_name, read_inputs};

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A ConfigMap manifest or the bare text of its `config` key; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Print the objects as YAML (exit 0), or every error (exit 1).
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let text = match read_inputs(std::slice::from_ref(&args.file), io.stdin) {
        Ok(mut inputs) => inputs.pop().map(|(_, text)| text).unwrap_or_default(),
        Err(e) => return io.fail(&e),
    };
    match ferrolb_config::convert::convert(&text) {
        Ok(yaml) => io.out(&yaml),
        Err(errors) => io.invalid(&errors.within(&input_name(&args.file))),
    }
}
