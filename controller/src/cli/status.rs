//! `ferrolb status [SERVICE] [-n NS | -A] [-o wide|json|yaml]`: one line per
//! LoadBalancer Service with its IPs, pool, protocol, announcing nodes and,
//! when it is not announced, why ([`crate::status_report`]); exit 0 when
//! every Service shown is announced, 1 otherwise. `ferrolb status peers`:
//! the BGP sessions of every speaker, from the speakers' metrics
//! ([`crate::peer_report`]).
//!
//! The only I/O of the command is here: reading the cluster with a
//! kubeconfig as kubectl does, and the speakers' metrics endpoints.

use std::path::PathBuf;

use ferrolb_config::crd::{self, ServiceBgpStatus, ServiceL2Status};
use ferrolb_shell::startup::{KubeconfigSource, client};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::{Exit, Io};
use crate::peer_report::{self, PeerRow};
use crate::status_report::{ClusterView, Row, report};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// The table with the interfaces or peers of each announcer.
    Wide,
    /// A JSON array of the rows.
    Json,
    /// A YAML list of the rows.
    Yaml,
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Exit status: 0 every Service shown has an IP and is announced (peers: every session is up); \
1 some is not (its REASON says why); 2 bad usage or the cluster cannot be read."
)]
pub struct Args {
    /// `peers`: the BGP sessions of every speaker instead.
    #[command(subcommand)]
    pub what: Option<What>,
    /// Only this Service.
    pub service: Option<String>,
    /// The Services of this namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The Services of every namespace.
    #[arg(short = 'A', long = "all-namespaces", conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Cluster access options.
    #[command(flatten)]
    pub access: Access,
}

/// What `status` can show besides Services.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// BGP sessions per node (state, uptime, prefixes sent), from the speakers' metrics.
    Peers(PeersArgs),
}

/// Arguments of `status peers`.
#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    /// Output format (`wide` is the table).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The speakers' metrics port.
    #[arg(long, default_value_t = 7472)]
    pub metrics_port: u16,
    /// Cluster access options.
    #[command(flatten)]
    pub access: Access,
}

/// How the cluster is reached and where ferrolb runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Access {
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster), as kubectl.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Where ferrolb runs and reads its config (the ConfigMap `config` and the metallb.io objects).
    #[arg(long, default_value = crd::DEFAULT_NAMESPACE, global = true)]
    pub ferrolb_namespace: String,
    /// The controller's `--lb-class`, if it has one.
    #[arg(long, global = true)]
    pub lb_class: Option<String>,
}

/// Runs `status` or `status peers`.
pub fn run(args: &Args, io: &mut Io<'_>) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return io.fail(&format!("cannot start the async runtime: {e}")),
    };
    match &args.what {
        Some(What::Peers(peers)) => runtime.block_on(run_peers(peers, io)),
        None => runtime.block_on(run_services(args, io)),
    }
}

async fn connect(access: &Access) -> Result<Client, String> {
    client(KubeconfigSource::select(access.kubeconfig.as_deref()))
        .await
        .map_err(|e| format!("cannot reach the cluster: {e}"))
}

async fn run_services(args: &Args, io: &mut Io<'_>) -> Exit {
    let client = match connect(&args.access).await {
        Ok(c) => c,
        Err(e) => return io.fail(&e),
    };
    let view = match gather(&client, &args.access).await {
        Ok(v) => v,
        Err(e) => return io.fail(&e),
    };
    let namespace = (!args.all_namespaces).then(|| {
        args.namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string())
    });
    let rows: Vec<Row> = report(&view)
        .into_iter()
        .filter(|r| namespace.as_ref().is_none_or(|ns| &r.namespace == ns))
        .filter(|r| args.service.as_ref().is_none_or(|s| &r.name == s))
        .collect();
    if let Some(name) = &args.service
        && rows.is_empty()
    {
        let ns = namespace.unwrap_or_default();
        return io.fail(&format!("no LoadBalancer Service {ns}/{name}"));
    }
    let text = match render(&rows, args.output, args.all_namespaces) {
        Ok(t) => t,
        Err(e) => return io.fail(&e),
    };
    match io.out(&text) {
        Exit::Ok if rows.iter().all(Row::announced) => Exit::Ok,
        Exit::Ok => Exit::Unannounced,
        other => other,
    }
}

/// Lists `K` in `namespace` (all when `None`); a kind the server does not
/// serve (CRDs not installed) is empty.
async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>, String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(format!(
            "cannot list {}: {e}",
            K::plural(&Default::default())
        )),
    }
}

/// Reads what the report needs: every Service, the config as the
/// controller loads it, the Events, the status objects.
async fn gather(client: &Client, access: &Access) -> Result<ClusterView, String> {
    let ns = Some(access.ferrolb_namespace.as_str());
    let services: Vec<Service> = list(client, None).await?;
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list namespaces: {e}"))?
        .items
        .into_iter()
        .filter_map(|n| Some((n.metadata.name?, n.metadata.labels.unwrap_or_default())))
        .collect();
    let configmaps: Vec<ConfigMap> = list(client, ns).await?;
    let text = configmaps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("config"))
        .and_then(|c| c.data.as_ref()?.get("config").cloned());
    let resources = crd::Resources {
        ip_address_pools: list(client, ns).await?,
        l2_advertisements: list(client, ns).await?,
        bgp_advertisements: list(client, ns).await?,
        bgp_peers: list(client, ns).await?,
        communities: list(client, ns).await?,
        bfd_profiles: list(client, ns).await?,
    };
    Ok(ClusterView {
        services,
        config: ferrolb_config::load(text.as_deref(), &resources),
        namespaces,
        events: list::<Event>(client, None).await?,
        l2: list::<ServiceL2Status>(client, None).await?,
        bgp: list::<ServiceBgpStatus>(client, None).await?,
        lb_class: access.lb_class.clone(),
    })
}

/// The rows in `format`; NAMESPACE is a column with `-A` only, as kubectl.
pub fn render(rows: &[Row], format: Format, with_namespace: bool) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(rows)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(&rows.to_vec()).map_err(|e| e.to_string()),
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let mut header = vec![
                "NAMESPACE",
                "NAME",
                "IPS",
                "POOL",
                "PROTOCOL",
                "ANNOUNCED BY",
            ];
            if wide {
                header.push("VIA");
            }
            header.push("REASON");
            let lines = rows.iter().map(|r| {
                let mut cells = vec![
                    r.namespace.clone(),
                    r.name.clone(),
                    or_none(
                        r.ips
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    r.pool.clone().unwrap_or_else(|| "-".into()),
                    or_dash(r.protocols.join(",")),
                    or_dash(announcer_nodes(r)),
                ];
                if wide {
                    cells.push(or_dash(
                        r.announcers
                            .iter()
                            .map(|a| format!("{}:{}", a.node, a.via.join("+")))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ));
                }
                cells.push(r.reason.clone().unwrap_or_else(|| "-".into()));
                cells
            });
            let mut table: Vec<Vec<String>> =
                std::iter::once(header.iter().map(|s| s.to_string()).collect())
                    .chain(lines)
                    .collect();
            if !with_namespace {
                for line in &mut table {
                    line.remove(0);
                }
            }
            Ok(align(&table))
        }
    }
}

fn announcer_nodes(r: &Row) -> String {
    let mut nodes: Vec<&str> = r.announcers.iter().map(|a| a.node.as_str()).collect();
    nodes.dedup();
    nodes.join(",")
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<pending>".into() } else { s }
}

/// Columns padded to their widest cell, three spaces apart, the last one unpadded.
pub fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for line in lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < line.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

async fn run_peers(args: &PeersArgs, io: &mut Io<'_>) -> Exit {
    let client = match connect(&args.access).await {
        Ok(c) => c,
        Err(e) => return io.fail(&e),
    };
    let pods: Vec<Pod> = match Api::<Pod>::namespaced(client, &args.access.ferrolb_namespace)
        .list(&ListParams::default().labels(peer_report::SPEAKER_SELECTOR))
        .await
    {
        Ok(l) => l.items,
        Err(e) => return io.fail(&format!("cannot list the speaker Pods: {e}")),
    };
    // Every speaker at once: an unreachable one costs one timeout, not one each.
    let speakers = peer_report::speakers(&pods);
    let client = peer_report::metrics_client();
    let scraped = futures::future::join_all(
        speakers
            .values()
            .map(|address| peer_report::scrape(&client, *address, args.metrics_port)),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut rows: Vec<PeerRow> = Vec::new();
    for (node, text) in speakers.keys().zip(&scraped) {
        rows.extend(peer_report::rows(
            node,
            text.as_deref().map_err(String::as_str),
            now,
        ));
    }
    let text = match args.output {
        Format::Json => serde_json::to_string_pretty(&rows)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(&rows).map_err(|e| e.to_string()),
        Format::Table | Format::Wide => Ok(align(&peer_report::table(&rows))),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return io.fail(&e),
    };
    match io.out(&text) {
        Exit::Ok if rows.iter().all(PeerRow::up) => Exit::Ok,
        Exit::Ok => Exit::Unannounced,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_report::Announcer;

    fn row(name: &str, announced: bool) -> Row {
        Row {
            namespace: "default".into(),
            name: name.into(),
            ips: if announced {
                vec!["192.168.5.240".parse().unwrap()]
            } else {
                vec![]
            },
            pool: announced.then(|| "default".into()),
            protocols: if announced { vec!["layer2"] } else { vec![] },
            announcers: if announced {
                vec![Announcer {
                    node: "node1".into(),
                    protocol: "layer2",
                    via: vec!["eth0".into()],
                }]
            } else {
                vec![]
            },
            reason: (!announced).then(|| "pool \"default\" is exhausted".into()),
        }
    }

    #[test]
    fn tables_align_columns_and_name_namespace_only_with_all_namespaces() {
        let rows = [row("web", true), row("db", false)];
        let cases = [
            (
                "table, one namespace",
                Format::Table,
                false,
                "NAME   IPS             POOL      PROTOCOL   ANNOUNCED BY   REASON\n\
                 web    192.168.5.240   default   layer2     node1          -\n\
                 db     <pending>       -         -          -              pool \"default\" is exhausted\n",
            ),
            (
                "wide, all namespaces",
                Format::Wide,
                true,
                "NAMESPACE   NAME   IPS             POOL      PROTOCOL   ANNOUNCED BY   VIA          REASON\n\
                 default     web    192.168.5.240   default   layer2     node1          node1:eth0   -\n\
                 default     db     <pending>       -         -          -              -            pool \"default\" is exhausted\n",
            ),
        ];
        for (rule, format, all, want) in cases {
            assert_eq!(render(&rows, format, all).unwrap(), want, "{rule}");
        }
    }

    #[test]
    fn json_output_parses_back_to_the_rows() {
        let rows = [row("web", true), row("db", false)];
        let text = render(&rows, Format::Json, false).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0]["name"], "web");
        assert_eq!(back[0]["announcers"][0]["node"], "node1");
        assert_eq!(back[1]["reason"], "pool \"default\" is exhausted");
        assert_eq!(back[1]["ips"], serde_json::json!([]));
    }
}
