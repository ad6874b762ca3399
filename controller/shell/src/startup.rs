//! How both daemons' binaries start and stop: the flags they share, logging,
//! the Kubernetes client (from `--kubeconfig`, else `KUBECONFIG`,
//! `~/.kube/config` or the in-cluster service account), and the shutdown
//! signal (SIGTERM, what the kubelet sends, or Ctrl-C); then the exit code.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::logging::{LogFormat, init_logging};

/// `--version` of every ferrolb binary: the workspace version and the git
/// commit it was built from (`unknown` when built without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERROLB_GIT_COMMIT"),
    ")"
);

/// The exit code when no Kubernetes client can be built.
pub const EXIT_NO_CLIENT: u8 = 2;

/// The start-up flags both daemons take (`#[command(flatten)]` into theirs).
#[derive(Debug, Clone, clap::Args)]
pub struct StartupArgs {
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Log lines on stderr as `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// What a ferrolb instance handles, the same for its controller and its
/// speakers (`#[command(flatten)]` into their flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// Name of the ConfigMap holding the legacy config (key `config`).
    #[arg(long = "config", default_value = "config")]
    pub config_name: String,
    /// Handle only Services with this spec.loadBalancerClass (default: only Services without one).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
}

/// Where the client's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource<'a> {
    /// This file (`--kubeconfig`), and no other.
    File(&'a Path),
    /// kube's inference: `KUBECONFIG`, then `~/.kube/config`, then the
    /// in-cluster service account.
    Infer,
}

impl<'a> KubeconfigSource<'a> {
    /// The source for a `--kubeconfig` flag given or not.
    pub fn select(flag: Option<&'a Path>) -> Self {
        flag.map_or(Self::Infer, Self::File)
    }
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or used.
    #[error(transparent)]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// No configuration could be inferred.
    #[error(transparent)]
    Infer(#[from] kube::config::InferConfigError),
    /// The configuration did not make a client (TLS, proxy, ...).
    #[error(transparent)]
    Client(#[from] kube::Error),
}

/// The Kubernetes client from `source`.
pub async fn client(source: KubeconfigSource<'_>) -> Result<kube::Client, ClientError> {
    let config = match source {
        KubeconfigSource::File(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        KubeconfigSource::Infer => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// The shutdown signal handed to a daemon.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // No SIGTERM handler: Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// A binary's `main` once its flags are parsed: sets up logging, builds the
/// client, and runs `daemon` with it until [`shutdown_signal`]. Exits 0
/// when the daemon stops cleanly, 1 (logging `<name> failed`) when it fails,
/// [`EXIT_NO_CLIENT`] when there is no client.
pub async fn run<F, E>(
    args: &StartupArgs,
    name: &str,
    daemon: impl FnOnce(kube::Client, Shutdown) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    init_logging(args.log_format);
    let client = match client(KubeconfigSource::select(args.kubeconfig.as_deref())).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client");
            return ExitCode::from(EXIT_NO_CLIENT);
        }
    };
    match daemon(client, Box::pin(shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn kubeconfig_flag_wins_else_kube_infers() {
        let path = Path::new("/etc/ferrolb/kubeconfig");
        // (rule, flag, source)
        let cases = [
            (
                "a_flag_names_the_one_file_used",
                Some(path),
                KubeconfigSource::File(path),
            ),
            (
                "without_a_flag_kube_infers_from_KUBECONFIG_home_or_in_cluster",
                None,
                KubeconfigSource::Infer,
            ),
        ];
        for (rule, flag, want) in cases {
            assert_eq!(KubeconfigSource::select(flag), want, "{rule}");
        }
    }

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: http://127.0.0.1:6443
contexts:
- name: lab
  context:
    cluster: lab
    user: lab
current-context: lab
users:
- name: lab
  user:
    token: secret
"#;

    #[tokio::test]
    async fn kubeconfig_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, KUBECONFIG).unwrap();
        let garbled = dir.path().join("garbled");
        std::fs::write(&garbled, "clusters: [").unwrap();
        let missing = dir.path().join("missing");
        // (rule, file, a client is built)
        let cases = [
            ("a_valid_file_makes_a_client", &good, true),
            ("a_missing_file_is_an_error", &missing, false),
            ("a_garbled_file_is_an_error", &garbled, false),
        ];
        for (rule, path, ok) in cases {
            let got = client(KubeconfigSource::File(path)).await;
            assert_eq!(got.is_ok(), ok, "{rule}: {:?}", got.err());
        }
    }

    #[tokio::test]
    async fn run_exits_2_without_a_client_and_never_starts_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let args = StartupArgs {
            kubeconfig: Some(dir.path().join("missing")),
            log_format: LogFormat::Text,
        };
        let mut started = false;
        let code = run(&args, "test", |_, _| {
            started = true;
            async { Ok::<(), String>(()) }
        })
        .await;
        assert_eq!(code, ExitCode::from(EXIT_NO_CLIENT));
        assert!(!started);
    }

    #[tokio::test]
    async fn run_exit_code_follows_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let args = StartupArgs {
            kubeconfig: Some(path),
            log_format: LogFormat::Text,
        };
        // (rule, the daemon's outcome, exit code)
        let cases = [
            ("a_clean_stop_exits_0", Ok(()), ExitCode::SUCCESS),
            ("a_failure_exits_1", Err("boom"), ExitCode::FAILURE),
        ];
        for (rule, outcome, want) in cases {
            let code = run(&args, "test", move |_, _| async move { outcome }).await;
            assert_eq!(code, want, "{rule}");
        }
    }
}
