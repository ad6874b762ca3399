//! `ferrolb plan --config FILE... --services FILE [--current FILE]`: which
//! IPs the Services would get under a config, offline (see [`crate::plan`]).

use std::path::PathBuf;

use ferrolb_config::documents::{self, Documents};

use super::{Exit, Io, read_inputs};
use crate::plan::{self, Objects, Outcome};

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// A YAML list of `{namespace, name, ips, pool, error}`.
    Yaml,
}

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 every Service gets its IPs; 1 the config is invalid; \
2 unreadable input or bad usage; 3 some Service gets no IP (see its error); \
4 the config would be refused as stale: it leaves IPs held by --current Services outside every pool."
)]
pub struct Args {
    /// ConfigMap (manifest or bare `config` text) and/or metallb.io/v1beta1 YAML files; `-` reads standard input.
    #[arg(long = "config", short = 'c', required = true, num_args = 1.., value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Services to place, in this order: YAML documents, a List (`kubectl get svc -o yaml`) or a sequence; Namespace objects give namespace labels.
    #[arg(long, value_name = "FILE")]
    pub services: PathBuf,
    /// Services whose status IPs are restored first, as the controller does on start-up (e.g. `kubectl get svc -A -o yaml`).
    #[arg(long, value_name = "FILE")]
    pub current: Option<PathBuf>,
    /// Only Services of this loadBalancerClass, like the controller's `--lb-class`.
    #[arg(long, value_name = "CLASS")]
    pub lb_class: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Prints the plan; see the exit status in the help text.
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let config_inputs = match read_inputs(&args.config, io.stdin) {
        Ok(inputs) => inputs,
        Err(e) => return io.fail(&e),
    };
    let mut docs = Documents::default();
    for (name, text) in &config_inputs {
        docs.extend(documents::read(text).within(name));
    }
    let config = match docs.load() {
        Ok(config) => config,
        Err(errors) => return io.invalid(&errors),
    };
    let mut paths = vec![args.services.clone()];
    paths.extend(args.current.clone());
    // stdin may be used by one of --config, --services and --current only.
    if config_inputs.iter().any(|(name, _)| name == "<stdin>")
        && paths
            .iter()
            .any(|p| p.as_path() == std::path::Path::new("-"))
    {
        return io.fail("standard input (-) can be read only once");
    }
    let inputs = match read_inputs(&paths, io.stdin) {
        Ok(inputs) => inputs,
        Err(e) => return io.fail(&e),
    };
    let mut namespaces = Objects::default();
    let mut lists = Vec::new();
    for (name, text) in &inputs {
        match plan::read_objects(text) {
            Ok(objects) => {
                lists.push(objects.services.clone());
                namespaces.extend(objects);
            }
            Err(e) => return io.fail(&format!("{name}: {e}")),
        }
    }
    let services = lists.first().cloned().unwrap_or_default();
    let current = lists.get(1).cloned().unwrap_or_default();
    match plan::plan(
        config,
        &services,
        &current,
        &namespaces.namespaces,
        args.lb_class.as_deref(),
    ) {
        Outcome::Refused(refused) => {
            let message = format!(
                "{refused}\nthe controller would keep its previous config and these IPs (config_stale = 1); \
                 put them back in a pool or free them first"
            );
            io.fail(&message);
            Exit::Refused
        }
        Outcome::Planned { rows, skipped } => {
            for (key, why) in &skipped {
                // Notes only: a closed stderr must not change the plan's result.
                let _ = writeln!(io.stderr, "note: {key} skipped: {why}");
            }
            let text = match args.output {
                Format::Table => plan::render_table(&rows),
                Format::Yaml => match plan::render_yaml(&rows) {
                    Ok(text) => text,
                    Err(e) => return io.fail(&format!("cannot render YAML: {e}")),
                },
            };
            match io.out(&text) {
                Exit::Ok if plan::all_placed(&rows) => Exit::Ok,
                Exit::Ok => Exit::NoIp,
                other => other,
            }
        }
    }
}
