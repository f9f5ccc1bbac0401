//! The simulator's certificate authorities: the client CA that signs client certificates
//! the way the Go connectors do, the server CA and the listeners' server certificate, and the
//! deliberately wrong material used by certificate faults. Does not check CSRs or speak HTTP.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SanType,
    SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::OnceLock;
use time::OffsetDateTime;

use crate::error::SimError;
use crate::subject::ExpectedSubject;

/// The serial number of every certificate the connectors issue.
pub const ISSUED_SERIAL: u8 = 2;

/// How an issued certificate deliberately deviates from a correct one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deviation {
    /// Certified public key is not the CSR's.
    ForeignKey,
    /// Subject CN differs from the requested one.
    WrongSubject,
    /// Validity ended an hour ago.
    Expired,
    /// Signed by a CA that is not the returned one (same name, other key).
    UnrelatedCa,
}

/// Why issuing failed (never the requester's fault: their CSR was already checked).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IssueError {
    #[error("the certificate request's public key is not usable")]
    PublicKey(#[source] rcgen::Error),
    #[error("signing the client certificate failed")]
    Sign(#[source] rcgen::Error),
    #[error("generating the fault material failed")]
    FaultMaterial,
}

/// A freshly issued client certificate with the CA the response carries.
pub(crate) struct Issued {
    pub pem: String,
    pub ca_pem: String,
    pub fingerprint: String,
    pub subject: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Issued {
    /// Client certificate followed by the CA, as the connectors return the chain.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.pem, self.ca_pem)
    }
}

pub(crate) struct FaultMaterial {
    foreign_key: KeyPair,
    unrelated_ca: Issuer<'static, KeyPair>,
}

/// The simulator's keys and certificates.
pub(crate) struct Authority {
    client_ca: Issuer<'static, KeyPair>,
    client_ca_name: DistinguishedName,
    client_ca_pem: String,
    client_ca_der: CertificateDer<'static>,
    server_ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
    /// Generated on first need; `None` if generation failed.
    fault_material: OnceLock<Option<FaultMaterial>>,
    /// A next CA announced by a rollover: returned after the signing CA in every CA
    /// bundle from then on (certificates are still signed by the current CA).
    announced_ca_pem: std::sync::Mutex<Option<String>>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("client_ca", &fingerprint(&self.client_ca_der))
            .field("server_cert", &fingerprint(&self.server_cert))
            .finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "kyma-connector-sim");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = now_seconds();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params.serial_number = Some(random_serial());
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn rsa_2048() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
}

/// Lower-case hex SHA-256 of a DER certificate: how issued certificates are identified.
pub fn fingerprint(der: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

impl Authority {
    /// Generates both CAs and the server certificate (the RSA key off the async threads).
    pub async fn generate() -> Result<Self, SimError> {
        let pki = |what| move |source| SimError::Pki { what, source };
        let client_key = tokio::task::spawn_blocking(rsa_2048)
            .await
            .map_err(SimError::KeyGenTask)?
            .map_err(pki("client ca key"))?;
        let client_params = ca_params("kyma-connector-sim client CA");
        let client_ca_cert = client_params
            .self_signed(&client_key)
            .map_err(pki("client ca certificate"))?;
        let client_ca_name = client_params.distinguished_name.clone();
        let client_ca = Issuer::new(client_params, client_key);

        let server_ca_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki("server ca key"))?;
        let server_ca_params = ca_params("kyma-connector-sim server CA");
        let server_ca_cert = server_ca_params
            .self_signed(&server_ca_key)
            .map_err(pki("server ca certificate"))?;
        let server_ca = Issuer::new(server_ca_params, server_ca_key);

        let server_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki("server key"))?;
        let mut server_params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "kyma-connector-sim");
        name.push(DnType::CommonName, "localhost");
        server_params.distinguished_name = name;
        server_params.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().map_err(pki("server name"))?),
        ];
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let now = now_seconds();
        server_params.not_before = now - time::Duration::days(1);
        server_params.not_after = now + time::Duration::days(3650);
        server_params.serial_number = Some(random_serial());
        let server_cert = server_params
            .signed_by(&server_key, &server_ca)
            .map_err(pki("server certificate"))?;

        Ok(Authority {
            client_ca,
            client_ca_name,
            client_ca_pem: client_ca_cert.pem(),
            client_ca_der: client_ca_cert.der().clone(),
            server_ca_pem: server_ca_cert.pem(),
            server_cert: server_cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
            fault_material: OnceLock::new(),
            announced_ca_pem: std::sync::Mutex::new(None),
        })
    }

    /// Starts a CA rotation the way a connector announces one: a new CA certificate joins
    /// the returned CA bundle (after the current one, which keeps signing). Returns its PEM;
    /// a second call announces another one instead.
    pub fn announce_next_ca(&self) -> Result<String, SimError> {
        let pki = |what: &'static str| move |source| SimError::Pki { what, source };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki("next ca key"))?;
        let pem = ca_params("kyma-connector-sim client CA (next)")
            .self_signed(&key)
            .map_err(pki("next ca certificate"))?
            .pem();
        *self.lock_announced() = Some(pem.clone());
        Ok(pem)
    }

    /// The CA bundle every response carries: the signing CA, then any announced one.
    fn ca_bundle(&self) -> String {
        match self.lock_announced().as_deref() {
            Some(next) => format!("{}{next}", self.client_ca_pem),
            None => self.client_ca_pem.clone(),
        }
    }

    fn lock_announced(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Only whole values are stored: a poisoned lock still holds a consistent one.
        self.announced_ca_pem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca_pem
    }

    pub fn client_ca_der(&self) -> &CertificateDer<'static> {
        &self.client_ca_der
    }

    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca_pem
    }

    /// The listeners' certificate chain (leaf only; clients trust the server CA).
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server_cert.clone()]
    }

    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.server_key.clone_key())
    }

    /// Whether the wrong key and the unrelated CA exist yet.
    pub fn has_fault_material(&self) -> bool {
        self.fault_material.get().is_some()
    }

    /// The wrong key and the unrelated CA, generated on first call (two RSA keys: call it
    /// from a blocking thread when it may generate).
    pub fn fault_material(&self) -> Result<&FaultMaterial, IssueError> {
        self.fault_material
            .get_or_init(|| {
                let foreign_key = rsa_2048().ok()?;
                let unrelated_key = rsa_2048().ok()?;
                // Same name as the real client CA, other key: only a signature check tells.
                let mut params = ca_params("unused");
                params.distinguished_name = self.client_ca_name.clone();
                Some(FaultMaterial {
                    foreign_key,
                    unrelated_ca: Issuer::new(params, unrelated_key),
                })
            })
            .as_ref()
            .ok_or(IssueError::FaultMaterial)
    }

    /// Signs a client certificate for the CSR key `spki_der` like the Go connectors: subject
    /// re-encoded in Go's order, serial 2, digitalSignature + clientAuth, valid from now for
    /// `validity`. `deviation` makes it deliberately wrong in one way.
    pub fn issue(
        &self,
        spki_der: &[u8],
        subject: &ExpectedSubject,
        validity: Duration,
        deviation: Option<Deviation>,
    ) -> Result<Issued, IssueError> {
        let public_key =
            rcgen::SubjectPublicKeyInfo::from_der(spki_der).map_err(IssueError::PublicKey)?;
        let now = now_seconds();
        let lifetime = time::Duration::try_from(validity).unwrap_or(time::Duration::days(90));
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(&[ISSUED_SERIAL]));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now;
        params.not_after = now + lifetime;
        let subject = match deviation {
            Some(Deviation::WrongSubject) => {
                ExpectedSubject::new(format!("{}-other", subject.common_name()))
            }
            _ => subject.clone(),
        };
        params.distinguished_name = subject.distinguished_name();
        if deviation == Some(Deviation::Expired) {
            params.not_after = now - time::Duration::hours(1);
            params.not_before = params.not_after - lifetime;
        }

        let signed = match deviation {
            Some(Deviation::ForeignKey) => {
                let material = self.fault_material()?;
                params.signed_by(&material.foreign_key, &self.client_ca)
            }
            Some(Deviation::UnrelatedCa) => {
                let material = self.fault_material()?;
                params.signed_by(&public_key, &material.unrelated_ca)
            }
            _ => params.signed_by(&public_key, &self.client_ca),
        }
        .map_err(IssueError::Sign)?;

        Ok(Issued {
            fingerprint: fingerprint(signed.der()),
            pem: signed.pem(),
            ca_pem: self.ca_bundle(),
            subject: subject.go_ordered(),
            not_before: params.not_before.into(),
            not_after: params.not_after.into(),
        })
    }
}
