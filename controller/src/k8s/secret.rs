//! The memberlist Secret: the speakers encrypt their gossip with its key. The
//! seed tutorial creates it by hand; when it is missing the controller creates
//! one with a random key so that a two-command install works.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;

/// Name of the Secret the speakers read.
pub const MEMBERLIST_SECRET: &str = "memberlist";
/// Key of the Secret holding the shared key.
pub const MEMBERLIST_KEY: &str = "secretkey";

/// What [`ensure_memberlist_secret`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOutcome {
    /// The Secret already existed; it is left as it is.
    Existing,
    /// The controller created it.
    Created,
}

/// Errors while ensuring the Secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system gave no random bytes.
    #[error("no randomness for the memberlist key: {0}")]
    Random(getrandom::Error),
    /// The API server refused a call.
    #[error("memberlist secret: {0}")]
    Api(#[from] kube::Error),
}

/// Create the memberlist Secret in `namespace` unless it exists.
pub async fn ensure_memberlist_secret(
    client: kube::Client,
    namespace: &str,
) -> Result<SecretOutcome, SecretError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    if api.get_opt(MEMBERLIST_SECRET).await?.is_some() {
        return Ok(SecretOutcome::Existing);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(MEMBERLIST_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("app".into(), "metallb".into())])),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(MEMBERLIST_KEY.into(), random_key()?)])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(SecretOutcome::Created),
        // Another writer (a person, or a second controller) was faster: theirs stands.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(SecretOutcome::Existing),
        Err(e) => Err(e.into()),
    }
}

/// 128 random bytes, hex-encoded (as strong as the tutorial's `openssl rand -base64 128`).
fn random_key() -> Result<String, SecretError> {
    let mut bytes = [0u8; 128];
    getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
