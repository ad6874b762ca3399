//! Writing a Service's `status.loadBalancer.ingress`: the only part of a
//! Service the controller ever changes, always through the status subresource.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// The merge patch that sets the ingress list to exactly `ips` (empty = clear it).
///
/// A JSON merge patch replaces lists whole, so an update never appends IPs to
/// what was there (the MetalLB v0.12 bug of IPs listed twice).
pub fn ingress_patch(ips: &[IpAddr]) -> serde_json::Value {
    if ips.is_empty() {
        json!({ "status": { "loadBalancer": { "ingress": null } } })
    } else {
        let ingress: Vec<_> = ips
            .iter()
            .map(|ip| json!({ "ip": ip.to_string() }))
            .collect();
        json!({ "status": { "loadBalancer": { "ingress": ingress } } })
    }
}

/// Set the Service's ingress IPs (empty = clear them).
///
/// The response (the whole Service) is not parsed: the watch delivers the
/// new state anyway, and parsing thousands of Services costs the time that
/// the benchmark of 5,000 Services measures.
pub async fn write_ingress(
    client: kube::Client,
    namespace: &str,
    name: &str,
    ips: &[IpAddr],
) -> Result<(), kube::Error> {
    let url = Service::url_path(&(), Some(namespace));
    let request = kube::core::Request::new(url)
        .patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(ingress_patch(ips)),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_patch_replaces_the_whole_list() {
        let ips: Vec<IpAddr> = vec!["192.168.5.5".parse().unwrap(), "fd00:5::5".parse().unwrap()];
        assert_eq!(
            ingress_patch(&ips),
            json!({"status":{"loadBalancer":{"ingress":[{"ip":"192.168.5.5"},{"ip":"fd00:5::5"}]}}})
        );
    }

    #[test]
    fn ingress_patch_with_no_ips_clears_the_list() {
        assert_eq!(
            ingress_patch(&[]),
            json!({"status":{"loadBalancer":{"ingress":null}}})
        );
    }
}
