//! TLS for database connections: rustls (ring provider) verifying the certificate chain AND
//! the host name (tokio-postgres's own `sslmode` has no verify-full; we always connect with
//! `sslmode=require` plus this verifier, so an unverified certificate is a failed connection).
//!
//! Trust anchors, by what the connection reaches:
//! * **RDS Proxy** ([`TlsMode::Proxy`]): the proxy presents an ACM certificate, which chains to
//!   the Amazon Root CAs. We trust Amazon Root CA 1-4 only (taken from `webpki-roots`), not the
//!   whole public web PKI.
//! * **The Aurora cluster directly** ([`TlsMode::Cluster`], the migrate function): the Amazon
//!   RDS CA bundle (`global-bundle.pem`), shipped in `shared/certs/rds-global-bundle.pem` and
//!   embedded in the binary (see `shared/certs/README.md` for its origin and how to refresh it).
//! * A PEM file of your own (`FARMOPS_DB_CA_BUNDLE`) replaces either set (tests, private CAs).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::{
    config::TlsMode,
    db::Tls,
    error::{Error, Result},
};

/// The Amazon RDS CA bundle (regional RSA2048/RSA4096/ECC384 roots), embedded.
pub const RDS_GLOBAL_BUNDLE: &str = include_str!("../../certs/rds-global-bundle.pem");

/// Amazon Root CA 1-4, the roots ACM certificates (and so RDS Proxy's) chain to.
pub fn amazon_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.extend(
        webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .filter(|anchor| contains(anchor.subject.as_ref(), b"Amazon Root CA "))
            .cloned(),
    );
    store
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Trust anchors from PEM text; fails when it holds no usable certificate.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::unexpected(format!("reading CA certificates: {e}")))?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::unexpected(
            "the CA bundle holds no usable certificate",
        ));
    }
    Ok(store)
}

/// The RDS global bundle as trust anchors.
pub fn rds_roots() -> Result<RootCertStore> {
    roots_from_pem(RDS_GLOBAL_BUNDLE.as_bytes())
}

/// A connector that verifies chain and host name against `roots`.
pub fn connector(roots: RootCertStore) -> Result<Tls> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::unexpected(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
        config,
    )))
}

/// The connector for a configured mode (`ca_bundle`: PEM text replacing the default roots).
pub fn for_mode(mode: &TlsMode, ca_bundle: Option<&[u8]>) -> Result<Tls> {
    let roots = match (mode, ca_bundle) {
        (TlsMode::Disable, _) => return Ok(Tls::Disabled),
        (_, Some(pem)) => roots_from_pem(pem)?,
        (TlsMode::Proxy, None) => amazon_roots(),
        (TlsMode::Cluster, None) => rds_roots()?,
    };
    connector(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_roots_are_the_four_amazon_roots_only() {
        let store = amazon_roots();
        assert_eq!(store.len(), 4, "Amazon Root CA 1, 2, 3 and 4");
        assert!(
            store
                .roots
                .iter()
                .any(|a| contains(a.subject.as_ref(), b"Amazon Root CA 1"))
        );
        assert!(store.len() < webpki_roots::TLS_SERVER_ROOTS.len());
    }

    #[test]
    fn the_shipped_rds_bundle_parses_into_many_regional_roots() {
        let store = rds_roots().unwrap();
        // one root per region and key type: far more than a handful
        assert!(store.len() > 50, "{} roots", store.len());
        assert!(store.roots.iter().any(|a| contains(
            a.subject.as_ref(),
            b"Amazon RDS us-east-1 Root CA RSA2048 G1"
        )));
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(roots_from_pem(b"not a certificate").is_err());
        assert!(roots_from_pem(b"").is_err());
    }
}
