//! Talking to the lab's API server from the test process.
//!
//! The API server listens inside the control-plane namespace, which the root namespace cannot
//! reach (the lab never touches the root namespace's network). So each call runs on a thread
//! that enters the control-plane namespace and drives a current-thread tokio runtime there:
//! the kube client's connections are opened from inside the namespace.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

use super::topology::Host;
use super::{LabError, netns, objects};

/// The field manager the lab's writes are recorded under.
const FIELD_MANAGER: &str = "ferrolb-lab";

/// Access to the lab's API server: the namespace to call from and the kubeconfig to use.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    netns: String,
    kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Calls are made from inside `netns` with the cluster and credentials in `kubeconfig`.
    pub fn new(netns: &str, kubeconfig: &Path) -> Self {
        Self {
            netns: netns.to_string(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The kubeconfig file the calls use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The namespace the calls are made from.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Runs `f` with a kube client inside the control-plane namespace and returns its result.
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, LabError>
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let kubeconfig = self.kubeconfig.clone();
        netns::run_in(&self.netns, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| LabError::io("start a tokio runtime", e))?;
            runtime.block_on(async move {
                let client = client(&kubeconfig).await?;
                Ok(f(client).await)
            })
        })?
    }

    /// Waits until the API server answers `/readyz`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), LabError> {
        self.run(move |client| async move {
            let deadline = Instant::now() + timeout;
            loop {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| LabError::Api(e.to_string()))?;
                let error = match client.request_text(request).await {
                    Ok(_) => return Ok(()),
                    Err(e) => e,
                };
                if Instant::now() >= deadline {
                    return Err(LabError::Timeout {
                        what: format!("the API server's /readyz (last error: {error})"),
                        after: timeout,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })?
    }

    /// Creates the `metallb-system` namespace, a Node per node and a Running, Ready speaker
    /// Pod per node; objects that exist already are updated.
    pub fn register_nodes(&self, nodes: &[Host]) -> Result<(), LabError> {
        let nodes = nodes.to_vec();
        self.run(move |client| async move { register(client, &nodes).await })?
    }
}

/// A kube client for the cluster in `kubeconfig`.
pub async fn client(kubeconfig: &Path) -> Result<Client, LabError> {
    let file = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| LabError::Api(format!("read {}: {e}", kubeconfig.display())))?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| LabError::Api(format!("use {}: {e}", kubeconfig.display())))?;
    Ok(Client::try_from(config)?)
}

/// A kubeconfig (JSON is YAML) for a plain-HTTP API server at `url` without credentials.
pub fn plain_kubeconfig(url: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": url}}],
        "users": [{"name": "lab", "user": {}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
        "current-context": "lab",
    })
    .to_string()
}

async fn register(client: Client, nodes: &[Host]) -> Result<(), LabError> {
    let post = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let patch = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    create_or_keep(
        Api::<Namespace>::all(client.clone())
            .create(&post, &objects::speaker_namespace())
            .await,
    )?;
    let node_api = Api::<Node>::all(client.clone());
    let pod_api = Api::<Pod>::namespaced(client, objects::SPEAKER_NAMESPACE);
    for host in nodes {
        create_or_keep(node_api.create(&post, &objects::node(host)).await)?;
        node_api
            .patch_status(
                &host.name,
                &patch,
                &Patch::Merge(objects::node_status(host)),
            )
            .await?;
        create_or_keep(pod_api.create(&post, &objects::speaker_pod(host)).await)?;
        pod_api
            .patch_status(
                &objects::speaker_pod_name(&host.name),
                &patch,
                &Patch::Merge(objects::speaker_pod_status(host)),
            )
            .await?;
    }
    Ok(())
}

/// A create that found the object already there is fine (a real cluster, a second run).
fn create_or_keep<T>(result: Result<T, kube::Error>) -> Result<(), LabError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
