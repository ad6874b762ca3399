//! `ferrolb crds`: the CustomResourceDefinitions generated from the Rust
//! types (the content of `manifests/crds.yaml`).

use super::{Exit, Io};

/// Arguments of `crds` (none).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Print all CRDs as one multi-document YAML text.
pub fn run(_args: &Args, io: &mut Io<'_>) -> Exit {
    match ferrolb_config::crd::definitions_yaml() {
        Ok(yaml) => io.out(&yaml),
        Err(e) => io.fail(&format!("cannot write YAML: {e}")),
    }
}
