//! Registers the admission webhook: writes the CA of its certificate into
//! every webhook of its ValidatingWebhookConfiguration (and, when asked, a
//! URL in place of the Service). Needs only get and patch on that one object.

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// The patch that points every webhook of `current` at us: a merge patch
/// of the whole `webhooks` list (lists are replaced whole), guarded by the
/// resourceVersion read, so a concurrent change is not lost but retried.
pub fn registration_patch(
    current: &ValidatingWebhookConfiguration,
    ca_pem: Option<&str>,
    url: Option<&str>,
) -> Result<Value, serde_json::Error> {
    let webhooks = current
        .webhooks
        .iter()
        .flatten()
        .map(|hook| {
            let mut hook = serde_json::to_value(hook)?;
            if let Some(cc) = hook.get_mut("clientConfig").and_then(Value::as_object_mut) {
                if let Some(pem) = ca_pem {
                    cc.insert(
                        "caBundle".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(pem)),
                    );
                }
                if let Some(url) = url {
                    cc.remove("service");
                    cc.insert("url".into(), json!(url));
                }
            }
            Ok(hook)
        })
        .collect::<Result<Vec<Value>, serde_json::Error>>()?;
    Ok(json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "webhooks": webhooks,
    }))
}

/// Read the configuration and patch it (once; the caller retries).
pub async fn register(
    client: kube::Client,
    name: &str,
    ca_pem: Option<&str>,
    url: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let current = api.get(name).await?;
    let patch = registration_patch(&current, ca_pem, url).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    // Test code: a panic is how a failure is reported.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn configuration() -> ValidatingWebhookConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": "ferrolb-webhook", "resourceVersion": "7"},
            "webhooks": [
                {"name": "a.ferrolb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": "ferrolb-webhook", "namespace": "metallb-system", "path": "/validate"}}},
                {"name": "b.ferrolb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": "ferrolb-webhook", "namespace": "metallb-system", "path": "/validate"}}},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_ca_goes_into_every_webhook_guarded_by_the_resource_version() {
        let patch = registration_patch(&configuration(), Some("PEM"), None).unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let hooks = patch["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        for hook in hooks {
            assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
            assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
        }
    }

    #[test]
    fn a_url_replaces_the_service() {
        let patch = registration_patch(
            &configuration(),
            None,
            Some("https://192.168.4.2:9443/validate"),
        )
        .unwrap();
        for hook in patch["webhooks"].as_array().unwrap() {
            assert_eq!(
                hook["clientConfig"]["url"],
                "https://192.168.4.2:9443/validate"
            );
            assert!(hook["clientConfig"].get("service").is_none());
            assert!(hook["clientConfig"].get("caBundle").is_none());
        }
    }
}
