//! `ferrolb-controller`: assigns EXTERNAL-IPs to Services of type LoadBalancer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrolb_controller::daemon::{self, Options};
use ferrolb_controller::webhook;
use ferrolb_shell::startup::{self, ScopeArgs, StartupArgs, VERSION};

/// Assigns EXTERNAL-IPs from ferrolb's address pools to Services of type LoadBalancer.
#[derive(Debug, Parser)]
#[command(version = VERSION)]
struct Args {
    /// Namespace of the config, the CRDs and the memberlist Secret.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,
    /// --config and --lb-class.
    #[command(flatten)]
    scope: ScopeArgs,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    /// --kubeconfig and --log-format.
    #[command(flatten)]
    startup: StartupArgs,
    /// Serve the validating admission webhook (HTTPS) on this address (default: no webhook).
    #[arg(long)]
    webhook_addr: Option<SocketAddr>,
    /// The ValidatingWebhookConfiguration whose caBundle the controller writes.
    #[arg(long, default_value = "ferrolb-webhook")]
    webhook_configuration: String,
    /// The Service in front of the webhook (the generated certificate names it).
    #[arg(long, default_value = "ferrolb-webhook")]
    webhook_service: String,
    /// Another DNS name or IP the generated certificate is valid for (repeatable).
    #[arg(long = "webhook-host", value_name = "NAME_OR_IP")]
    webhook_hosts: Vec<String>,
    /// Register this https URL in the configuration instead of the Service.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Serve tls.crt/tls.key of this folder (a mounted Secret) instead of a generated certificate; its ca.crt, if any, goes into the caBundle.
    #[arg(long)]
    webhook_cert_dir: Option<PathBuf>,
}

// One thread: the work is I/O-bound, and one thread keeps the memory small.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        namespace: args.namespace,
        config_name: args.scope.config_name,
        lb_class: args.scope.lb_class,
        metrics_addr: args.metrics_addr,
        reporter: "ferrolb-controller".into(),
        webhook: args.webhook_addr.map(|addr| webhook::Options {
            addr,
            configuration: args.webhook_configuration,
            service: args.webhook_service,
            extra_names: args.webhook_hosts,
            url: args.webhook_url,
            cert_dir: args.webhook_cert_dir,
        }),
    };
    startup::run(&args.startup, "controller", |client, shutdown| {
        daemon::run(client, opts, shutdown)
    })
    .await
}
