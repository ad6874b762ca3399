//! `ferrolb-controller`: assigns EXTERNAL-IPs to Services of type LoadBalancer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrolb_controller::daemon::{self, Options};
use ferrolb_controller::logging::{LogFormat, init_logging};

/// Assigns EXTERNAL-IPs from ferrolb's address pools to Services of type LoadBalancer.
#[derive(Debug, Parser)]
#[command(version = VERSION)]
struct Args {
    /// Namespace of the config, the CRDs and the memberlist Secret.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,
    /// Name of the ConfigMap holding the legacy config (key `config`).
    #[arg(long = "config", default_value = "config")]
    config_name: String,
    /// Handle only Services with this spec.loadBalancerClass (default: only Services without one).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Log lines on stderr as `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--version`: the crate version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERROLB_GIT_COMMIT"),
    ")"
);

// One thread: the work is I/O-bound, and one thread keeps the memory small.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let client = match client(args.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        namespace: args.namespace,
        config_name: args.config_name,
        lb_class: args.lb_class,
        metrics_addr: args.metrics_addr,
        reporter: "ferrolb-controller".into(),
    };
    match daemon::run(client, opts, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "controller failed");
            ExitCode::FAILURE
        }
    }
}

async fn client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, Box<dyn std::error::Error>> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
