//! `lab`: bring ferrolb's namespace lab up and down by hand, show it, time it, and run the
//! nodes' TCP responders.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ferrolb_e2e::lab::leftovers::{self, LabState};
use ferrolb_e2e::lab::{ApiServer, Lab, LabConfig, netns, responder};

#[derive(Parser)]
#[command(about = "ferrolb's network-namespace lab (needs root)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a lab that stays until `lab down` and print where everything is.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Leave out the router namespaces.
        #[arg(long)]
        no_routers: bool,
        /// Leave out the API server.
        #[arg(long)]
        no_control_plane: bool,
    },
    /// Build a lab owned by this command: it goes away when the command gets SIGINT or
    /// SIGTERM, and if the command is killed, at the next lab start.
    Hold {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Leave out the router namespaces.
        #[arg(long)]
        no_routers: bool,
        /// Leave out the API server.
        #[arg(long)]
        no_control_plane: bool,
    },
    /// Show every lab on this machine.
    Status,
    /// Remove labs made by `lab up` and leftovers of dead runs (labs of running tests stay).
    Down {
        /// Remove only this lab, whoever owns it.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Answer every TCP connection with NAME (runs inside a node namespace).
    Responder {
        /// The name to answer with.
        #[arg(long)]
        name: String,
        /// The port to listen on (all local addresses).
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// A file to create once listening.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Time lab up and down for several sizes and print median and spread.
    Bench {
        /// Node counts to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [3, 10])]
        nodes: Vec<usize>,
        /// Runs per size.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up {
            nodes,
            no_routers,
            no_control_plane,
        } => up(config(nodes, no_routers, no_control_plane)),
        Command::Hold {
            nodes,
            no_routers,
            no_control_plane,
        } => hold(config(nodes, no_routers, no_control_plane)),
        Command::Status => status(),
        Command::Down { prefix } => down(prefix),
        Command::Responder {
            name,
            port,
            ready_file,
        } => responder::serve(&name, port, ready_file.as_deref()).context("responder"),
        Command::Bench { nodes, runs } => bench(&nodes, runs),
    }
}

fn config(nodes: usize, no_routers: bool, no_control_plane: bool) -> LabConfig {
    LabConfig {
        nodes,
        routers: !no_routers,
        control_plane: (!no_control_plane).then(ApiServer::from_env),
        ..LabConfig::default()
    }
}

fn up(config: LabConfig) -> Result<()> {
    let started = Instant::now();
    let lab = Lab::up(&LabConfig {
        persistent: true,
        ..config
    })?;
    println!("lab {} is up after {:?}", lab.prefix(), started.elapsed());
    print_lab(&LabState::load(lab.prefix())?);
    lab.detach();
    Ok(())
}

fn hold(config: LabConfig) -> Result<()> {
    let lab = Lab::up(&config)?;
    // Tests read this line to learn the prefix.
    println!("lab {} is up", lab.prefix());
    std::io::Write::flush(&mut std::io::stdout())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    lab.down()?;
    Ok(())
}

fn status() -> Result<()> {
    let prefixes = leftovers::prefixes();
    if prefixes.is_empty() {
        println!("no labs");
    }
    for prefix in prefixes {
        match LabState::load(&prefix) {
            Ok(state) => {
                let owner = match state.owner {
                    None => "kept until `lab down`".to_string(),
                    Some(o) if o.is_alive() => format!("owned by running pid {}", o.pid),
                    Some(o) => format!("LEFTOVER: owner pid {} is gone", o.pid),
                };
                println!("lab {prefix} ({owner})");
                print_lab(&state);
            }
            Err(e) => println!("lab {prefix}: no state ({e})"),
        }
    }
    Ok(())
}

fn print_lab(state: &LabState) {
    let t = &state.topology;
    let existing = netns::list();
    println!(
        "  {:<8} {:<20} {:<16} {:<14} {:<18} processes",
        "host", "namespace", "ipv4", "ipv6", "mac"
    );
    for h in t.hosts() {
        let mark = if existing.contains(&h.netns) {
            ""
        } else {
            " (missing)"
        };
        let processes: Vec<String> = netns::pids(&h.netns)
            .unwrap_or_default()
            .iter()
            .map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("{}[{pid}]", comm.trim())
            })
            .collect();
        println!(
            "  {:<8} {:<20} {:<16} {:<14} {:<18} {}{mark}",
            h.name,
            h.netns,
            h.ipv4,
            h.ipv6,
            h.mac,
            processes.join(" ")
        );
    }
    println!(
        "  LAN bridge in {}; Service ranges local on nodes",
        t.lan_netns
    );
    if let Some(k) = &state.kubeconfig {
        println!("  API server {} (kubeconfig {})", t.api_url(), k.display());
    }
    println!("  enter a namespace: ip netns exec {} bash", t.client.netns);
}

fn down(prefix: Option<String>) -> Result<()> {
    if let Some(prefix) = prefix {
        leftovers::remove(&prefix)?;
        println!("removed {prefix}");
        return Ok(());
    }
    for p in leftovers::reap_dead() {
        println!("removed leftover {p}");
    }
    for prefix in leftovers::prefixes() {
        if LabState::load(&prefix).is_ok_and(|s| s.owner.is_none()) {
            leftovers::remove(&prefix)?;
            println!("removed {prefix}");
        }
    }
    Ok(())
}

fn bench(sizes: &[usize], runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    println!("lab up/down time, {runs} runs each (router namespaces without daemons, API server)");
    println!(
        "{:>5}  {:>24}  {:>24}",
        "nodes", "up: median [min-max]", "down: median [min-max]"
    );
    for &nodes in sizes {
        let mut ups = Vec::new();
        let mut downs = Vec::new();
        for _ in 0..runs {
            let t0 = Instant::now();
            let lab = Lab::up(&LabConfig {
                nodes,
                ..LabConfig::default()
            })?;
            ups.push(t0.elapsed());
            let t1 = Instant::now();
            lab.down()?;
            downs.push(t1.elapsed());
        }
        println!(
            "{nodes:>5}  {:>24}  {:>24}",
            spread(&mut ups),
            spread(&mut downs)
        );
    }
    Ok(())
}

/// `median [min-max]` in milliseconds.
fn spread(samples: &mut [Duration]) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[samples.len() / 2];
    format!(
        "{:.0} ms [{:.0}-{:.0}]",
        ms(median),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}
