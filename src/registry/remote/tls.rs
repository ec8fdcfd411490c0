//! TLS for a registry whose options name a `ca_file`: the system's roots
//! plus the file's certificates, as reqwest would build it, with one
//! addition curl and skopeo have: a self-signed server certificate named
//! in `ca_file` is trusted as itself. rustls refuses such a certificate as
//! a server certificate when it says it is a CA (`openssl req -x509`'s
//! default), although the user named that very certificate; it is
//! accepted when the server presents exactly it, byte for byte, and for
//! nothing else.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::registry::RegistryError;

/// A client certificate chain and its key, both PEM, for mutual TLS.
pub(crate) struct ClientIdentity {
    /// The certificate chain.
    pub(crate) cert: Vec<u8>,
    /// The private key.
    pub(crate) key: Vec<u8>,
}

/// A client configuration trusting the system's roots and the PEM
/// certificates of `ca_file` (`pem`), with the client identity (PEM
/// certificate chain, PEM key) for mutual TLS, if any.
pub(crate) fn with_ca_file(
    ca_file: &std::path::Path,
    pem: &[u8],
    identity: Option<ClientIdentity>,
) -> Result<rustls::ClientConfig, RegistryError> {
    let config_error = |what: &std::path::Path, message: String| RegistryError::Config {
        what: what.display().to_string(),
        message,
    };
    let named: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| config_error(ca_file, format!("not a PEM CA bundle: {e}")))?;
    if named.is_empty() {
        return Err(config_error(
            ca_file,
            "not a PEM CA bundle: it holds no certificate".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
        named.iter().cloned(),
        provider.clone(),
    )
    .map_err(|e| config_error(ca_file, format!("cannot trust these certificates: {e}")))?;
    let verifier = Arc::new(NamedOrPlatform { platform, named });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(ca_file, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(ClientIdentity { cert, key }) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<_, _>>()
                .map_err(|e| config_error(ca_file, format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
                config_error(
                    ca_file,
                    "client certificate and key are not a usable PEM pair".to_string(),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|_| {
                config_error(
                    ca_file,
                    "client certificate and key are not a usable PEM pair".to_string(),
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform's verification, and a named self-signed certificate as
/// itself.
#[derive(Debug)]
struct NamedOrPlatform {
    platform: rustls_platform_verifier::Verifier,
    named: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for NamedOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            // Only the refusal of a CA certificate as a server's, and only
            // for exactly the certificate the user named.
            Err(e)
                if format!("{e:?}").contains("CaUsedAsEndEntity")
                    && self.named.iter().any(|n| n.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}
