//! `ferrolb validate FILE...`: the configuration the files describe
//! together, checked exactly as the controller and speaker check it.
//!
//! Exit codes: 0 valid; 1 invalid (every error printed), or an input holds
//! no configuration at all; 2 unreadable input or bad usage; 3 valid, but a
//! ConfigMap is not the one the controller reads (a warning says which).

use std::path::PathBuf;

use ferrolb_config::ConfigErrors;
use ferrolb_config::crd::DEFAULT_NAMESPACE;
use ferrolb_config::documents::{self, Documents};

use super::{Exit, Io, read_inputs};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 valid; 1 invalid, or an input holds no configuration; \
2 unreadable input or bad usage; 3 valid, but a ConfigMap is not the one the controller \
reads (--namespace/--name)"
)]
pub struct Args {
    /// ConfigMap (manifest or bare `config` text) and/or metallb.io/v1beta1 YAML files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The controller's namespace (its --namespace): where it reads the ConfigMap.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The name of the ConfigMap the controller reads (its --config).
    #[arg(long, default_value = "config")]
    pub name: String,
}

/// Print `ok: N pools, M peers` (and the BFD profiles and graceful restart
/// when used; see [`summary`]) (exit 0, or 3 with a warning) or every error (exit 1).
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let inputs = match read_inputs(&args.files, io.stdin) {
        Ok(inputs) => inputs,
        Err(e) => return io.fail(&e),
    };
    let mut docs = Documents::default();
    // Which file each object came from, to name it in validation errors.
    let mut sources: Vec<(String, Vec<String>)> = Vec::new();
    let mut warnings = Vec::new();
    for (name, text) in &inputs {
        let read = documents::read(text);
        if read.is_empty() {
            docs.errors
                .push(name.as_str(), ferrolb_config::convert::NOTHING_FOUND);
            continue;
        }
        if let Some(cm) = &read.configmap
            && let Some(cm_name) = &cm.name
        {
            let ns = cm.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            if ns != args.namespace || *cm_name != args.name {
                warnings.push(format!(
                    "{name}: warning: ConfigMap {ns}/{cm_name} is not the one the controller reads ({}/{})",
                    args.namespace, args.name
                ));
            }
        }
        sources.push((name.clone(), read.resources.object_paths()));
        docs.extend(read.within(name));
    }
    let read_errors = docs.errors.len();
    let only_file = (inputs.len() == 1).then(|| inputs[0].0.clone());
    let result = docs.load();
    for w in &warnings {
        if writeln!(io.stderr, "{w}").is_err() {
            return Exit::Usage;
        }
    }
    match result {
        Ok(config) => match io.out(&format!("{}\n", summary(&config))) {
            Exit::Ok if !warnings.is_empty() => Exit::Warning,
            other => other,
        },
        Err(errors) => {
            // Reading errors already name their file; validation errors name
            // an item, whose file is found here.
            let errors = errors
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    if i < read_errors {
                        return e;
                    }
                    let file = sources
                        .iter()
                        .find(|(_, paths)| paths.iter().any(|p| names(&e.path, p)))
                        .map(|(file, _)| file.clone())
                        .or_else(|| {
                            configmap_item(&e.path)
                                .then(|| docs.configmap_source.clone())
                                .flatten()
                        })
                        .or_else(|| only_file.clone());
                    match file {
                        Some(file) => e.within(&file),
                        None => e,
                    }
                })
                .collect();
            io.invalid(&ConfigErrors(errors))
        }
    }
}

/// Whether an error at `path` is about the object named `object`.
fn names(path: &str, object: &str) -> bool {
    path.strip_prefix(object)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// Whether an error at `path` is about an item of the ConfigMap's config.
fn configmap_item(path: &str) -> bool {
    ["address-pools", "peers", "bgp-communities", "bfd-profiles"]
        .iter()
        .any(|key| path.starts_with(key))
}
/// `ok: N pools, M peers`, then, when the config has them, the BFD
/// profiles with the peers using each and the peers with graceful restart:
/// `ok: 1 pools, 2 peers, 1 BFD profiles (fast: peer0, peer1), graceful restart: peer0`.
pub fn summary(config: &ferrolb_config::model::Config) -> String {
    let mut out = format!(
        "ok: {} pools, {} peers",
        config.pools.len(),
        config.peers.len()
    );
    if !config.bfd_profiles.is_empty() {
        let profiles: Vec<String> = config
            .bfd_profiles
            .iter()
            .map(|b| {
                let users: Vec<&str> = config
                    .peers
                    .iter()
                    .filter(|p| p.bfd_profile.as_deref() == Some(b.name.as_str()))
                    .map(|p| p.name.as_str())
                    .collect();
                if users.is_empty() {
                    format!("{}: unused", b.name)
                } else {
                    format!("{}: {}", b.name, users.join(", "))
                }
            })
            .collect();
        out.push_str(&format!(
            ", {} BFD profiles ({})",
            config.bfd_profiles.len(),
            profiles.join("; ")
        ));
    }
    let restarting: Vec<&str> = config
        .peers
        .iter()
        .filter(|p| p.graceful_restart)
        .map(|p| p.name.as_str())
        .collect();
    if !restarting.is_empty() {
        out.push_str(&format!(", graceful restart: {}", restarting.join(", ")));
    }
    out
}
