//! Trusting a server's own certificate: a server certificate that is exactly one of the
//! certificates the user gave as trusted (`--tls-ca`) is accepted even where WebPKI would refuse
//! it, as OpenSSL-based clients (grpcio, grpcurl) accept the self-signed certificate of
//! `openssl req -x509`, which is marked as a CA (WebPKI: "CA used as end entity"). Anything
//! else is verified by WebPKI against those certificates as usual; the handshake's signature is
//! always checked against the certificate presented.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// WebPKI over the trusted certificates, and those certificates pinned.
#[derive(Debug)]
pub(super) struct Pinned {
    trusted: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl Pinned {
    /// From the PEM certificates the user trusts; refused if there are none or they do not
    /// parse.
    pub(super) fn from_pem(pem: &[u8]) -> Result<Pinned, String> {
        let trusted: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--tls-ca: {e}"))?;
        if trusted.is_empty() {
            return Err("--tls-ca: no certificate in the file".into());
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in &trusted {
            // A certificate WebPKI cannot use as a root is still pinned.
            let _ = roots.add(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("--tls-ca: {e}"))?;
        Ok(Pinned { trusted, webpki })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(_)
                if self
                    .trusted
                    .iter()
                    .any(|t| t.as_ref() == end_entity.as_ref()) =>
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
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
