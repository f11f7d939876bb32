//! Development certificates: a throw-away CA and server certificates it signs, so the demo and
//! the tests run the proxy on real TLS with a client that verifies it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// How long a development server certificate is valid.
pub const SERVER_CERT_DAYS: u64 = 30;

/// A CA that lives as long as this value.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate the CA signed (for mutual TLS), with its key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's DER, as the server receives it in the handshake.
    pub der: Vec<u8>,
}

impl ClientCert {
    /// Certificate and key in one PEM text, as TLS clients take an identity.
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// PEM files written for one server certificate.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCa {
    pub fn generate() -> anyhow::Result<DevCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "scopegate development CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(DevCa { issuer })
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`, as (certificate PEM, key PEM),
    /// valid from an hour ago for [`SERVER_CERT_DAYS`] days: a lifetime a real certificate could
    /// have, so the certificate-expiry metric and panel show what they would in production.
    pub fn server_cert(&self) -> anyhow::Result<(String, String)> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(SERVER_CERT_DAYS * 86_400)).into();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A client certificate for `name` (its common name), for a listener that asks for one
    /// signed by this CA. Each call makes a new key, so two calls give two certificates.
    pub fn client_cert(&self, name: &str) -> anyhow::Result<ClientCert> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }

    /// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir`, readable by their owner alone.
    pub fn write_server_files(&self, dir: &Path) -> anyhow::Result<CertFiles> {
        let (cert, key) = self.server_cert()?;
        let files = CertFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        for (path, text) in [
            (&files.ca, self.ca_pem()),
            (&files.cert, cert),
            (&files.key, key),
        ] {
            crate::private_dir::write_private(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(files)
    }
}
