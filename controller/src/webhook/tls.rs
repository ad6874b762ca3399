//! The webhook's certificate: made at start (a CA and a leaf it signs,
//! for the Service's DNS names and any extra names or IPs), or read from a
//! mounted Secret folder (`tls.crt`, `tls.key`, optionally `ca.crt`).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why no TLS configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to make the certificate.
    #[error("cannot make the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file of the certificate folder could not be read or parsed.
    #[error("cannot read {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the certificate and key.
    #[error("the webhook certificate is not usable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain and key to serve, and the CA to put in the caBundle.
#[derive(Debug)]
pub struct Identity {
    /// The leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// PEM of the CA the API server must trust (`None`: the user manages the caBundle).
    pub ca_pem: Option<String>,
}

/// A fresh CA and a leaf for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<Identity, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "ferrolb-webhook-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names
            .first()
            .map(String::as_str)
            .unwrap_or("ferrolb-webhook"),
    );
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(Identity {
        chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key: PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(|e| TlsError::File {
            path: "<generated key>".into(),
            detail: e.to_string(),
        })?,
        ca_pem: Some(ca_cert.pem()),
    })
}

/// The certificate of a mounted `kubernetes.io/tls` Secret folder.
pub fn from_dir(dir: &Path) -> Result<Identity, TlsError> {
    let read_err = |name: &str, e: &dyn std::fmt::Display| TlsError::File {
        path: dir.join(name).display().to_string(),
        detail: e.to_string(),
    };
    let crt = dir.join("tls.crt");
    let chain = CertificateDer::pem_file_iter(&crt)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read_err("tls.crt", &e))?;
    if chain.is_empty() {
        return Err(read_err("tls.crt", &"no certificate in the file"));
    }
    let key =
        PrivateKeyDer::from_pem_file(dir.join("tls.key")).map_err(|e| read_err("tls.key", &e))?;
    let ca = dir.join("ca.crt");
    let ca_pem = if ca.exists() {
        Some(std::fs::read_to_string(&ca).map_err(|e| read_err("ca.crt", &e))?)
    } else {
        None
    };
    Ok(Identity { chain, key, ca_pem })
}

/// The rustls server configuration (ring provider, HTTP/1.1).
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    // Test code: a panic is how a failure is reported.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_generated_leaf_is_trusted_through_the_ca_for_every_name() {
        let names = vec![
            "ferrolb-webhook.metallb-system.svc".to_string(),
            "192.168.4.2".to_string(),
        ];
        let id = self_signed(&names).unwrap();
        let ca_pem = id.ca_pem.clone().unwrap();
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        for name in &names {
            let server = rustls_pki_types::ServerName::try_from(name.clone()).unwrap();
            verifier
                .verify_server_cert(
                    &id.chain[0],
                    &id.chain[1..],
                    &server,
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls_pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &id.chain[0],
                    &[],
                    &other,
                    &[],
                    rustls_pki_types::UnixTime::now()
                )
                .is_err()
        );
        server_config(&id).unwrap();
    }
}
