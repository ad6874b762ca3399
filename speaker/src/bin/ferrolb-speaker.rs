//! `ferrolb-speaker`: makes the LAN send each Service IP's traffic to one node.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrolb_speaker::daemon::{self, Options};
use ferrolb_speaker::logging::{LogFormat, init_logging};
use ferrolb_speaker::membership::{DEFAULT_PORT, Timing};

/// Announces the EXTERNAL-IPs of LoadBalancer Services from this node (layer 2: ARP/NDP).
#[derive(Debug, Parser)]
#[command(version = VERSION)]
struct Args {
    /// This node's name (the Node object's).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Namespace of the config, the CRDs, the speaker Pods and the memberlist Secret.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,
    /// Name of the ConfigMap holding the legacy config (key `config`).
    #[arg(long = "config", default_value = "config")]
    config_name: String,
    /// Handle only Services with this spec.loadBalancerClass (default: only Services without one).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
    /// The address to gossip from (default: this node's speaker Pod's status.hostIP).
    #[arg(long, env = "METALLB_HOST")]
    host_ip: Option<IpAddr>,
    /// The memberlist port, UDP and TCP.
    #[arg(long, env = "METALLB_ML_BIND_PORT", default_value_t = DEFAULT_PORT)]
    memberlist_port: u16,
    /// Label selector of the speaker Pods, whose IPs are the memberlist seeds.
    #[arg(
        long,
        env = "METALLB_ML_LABELS",
        default_value = "app=metallb,component=speaker"
    )]
    memberlist_labels: String,
    /// Name of the Secret holding the memberlist key (key `secretkey`).
    #[arg(long, env = "METALLB_ML_SECRET_NAME", default_value = "memberlist")]
    memberlist_secret: String,
    /// Failure detection: how often each speaker probes another, in ms.
    #[arg(long, default_value_t = 200)]
    probe_interval_ms: u64,
    /// Failure detection: how long a probe waits for its ack, in ms.
    #[arg(long, default_value_t = 100)]
    probe_timeout_ms: u64,
    /// Failure detection: suspicion lasts this many probe intervals (times log10 of the size).
    #[arg(long, default_value_t = 2)]
    suspicion_mult: u32,
    /// How often gossip is sent, in ms (a leave travels within about one interval).
    #[arg(long, default_value_t = 100)]
    gossip_interval_ms: u64,
    /// TCP timeout of joins, state syncs and the TCP fallback of a failed probe, in ms.
    #[arg(long, env = "FERROLB_ML_TCP_TIMEOUT_MS", default_value_t = 2000)]
    tcp_timeout_ms: u64,
    /// Try a failed UDP probe over TCP too before suspecting a node (adds up
    /// to the TCP timeout to the detection of a crashed node).
    #[arg(long, env = "FERROLB_ML_RELIABLE_PINGS", default_value_t = false, action = clap::ArgAction::Set)]
    reliable_pings: bool,
    /// How often speakers missing from the live set are joined again, in seconds.
    #[arg(long, default_value_t = 10)]
    rejoin_interval_secs: u64,
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

// One thread: the speaker's work is small and mostly waiting; every worker
// thread costs memory (its stack and its own malloc arena), and at 10,000
// Services a second one bought no speed. The one heavy step, recomputing
// the announcements, takes milliseconds, well inside memberlist's probe
// timeout and a client's ARP retry.
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
    let timing = Timing {
        probe_interval: Duration::from_millis(args.probe_interval_ms),
        probe_timeout: Duration::from_millis(args.probe_timeout_ms),
        suspicion_mult: args.suspicion_mult,
        gossip_interval: Duration::from_millis(args.gossip_interval_ms),
        tcp_timeout: Duration::from_millis(args.tcp_timeout_ms),
        reliable_pings: args.reliable_pings,
        ..Timing::default()
    };
    let opts = Options {
        node_name: args.node_name,
        namespace: args.namespace,
        config_name: args.config_name,
        lb_class: args.lb_class,
        metrics_addr: args.metrics_addr,
        memberlist_port: args.memberlist_port,
        host_ip: args.host_ip,
        speaker_selector: args.memberlist_labels,
        secret_name: args.memberlist_secret,
        timing,
        rejoin_interval: Duration::from_secs(args.rejoin_interval_secs.max(1)),
    };
    tracing::info!(node = %opts.node_name, namespace = %opts.namespace, "ferrolb speaker starting");
    match daemon::run(client, opts, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "speaker failed");
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

/// SIGTERM (what the kubelet sends) or Ctrl-C.
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
