//! `ferrolb-speaker`: makes the LAN send each Service IP's traffic to one node.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrolb_shell::startup::{self, ScopeArgs, StartupArgs, VERSION};
use ferrolb_speaker::daemon::{self, Options};
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
    /// --config and --lb-class.
    #[command(flatten)]
    scope: ScopeArgs,
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
    /// --kubeconfig and --log-format.
    #[command(flatten)]
    startup: StartupArgs,
}

// One thread: the speaker's work is small and mostly waiting; every worker
// thread costs memory (its stack and its own malloc arena), and at 10,000
// Services a second one bought no speed. The one heavy step, recomputing
// the announcements, takes milliseconds, well inside memberlist's probe
// timeout and a client's ARP retry.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
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
        config_name: args.scope.config_name,
        lb_class: args.scope.lb_class,
        metrics_addr: args.metrics_addr,
        memberlist_port: args.memberlist_port,
        host_ip: args.host_ip,
        speaker_selector: args.memberlist_labels,
        secret_name: args.memberlist_secret,
        timing,
        rejoin_interval: Duration::from_secs(args.rejoin_interval_secs.max(1)),
    };
    startup::run(&args.startup, "speaker", |client, shutdown| {
        tracing::info!(node = %opts.node_name, namespace = %opts.namespace, "ferrolb speaker starting");
        daemon::run(client, opts, shutdown)
    })
    .await
}
