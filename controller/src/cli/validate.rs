//! `ferrolb validate FILE...`: the configuration the files describe
//! together, checked exactly as the controller and speaker check it.

use std::path::PathBuf;

use ferrolb_config::documents::{self, Documents};

use super::{Exit, Io, read_inputs};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ConfigMap (manifest or bare `config` text) and/or metallb.io/v1beta1 YAML files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Print `ok: N pools, M peers` (exit 0) or every error (exit 1).
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let inputs = match read_inputs(&args.files, io.stdin) {
        Ok(inputs) => inputs,
        Err(e) => return io.fail(&e),
    };
    let mut docs = Documents::default();
    for (name, text) in &inputs {
        docs.extend(documents::read(text).within(name));
    }
    match docs.load() {
        Ok(config) => io.out(&format!(
            "ok: {} pools, {} peers\n",
            config.pools.len(),
            config.peers.len()
        )),
        Err(errors) => io.invalid(&errors),
    }
}
