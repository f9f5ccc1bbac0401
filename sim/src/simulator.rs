//! The library entry point: starts the three listeners with fresh CAs, hands out URLs and
//! tokens, exposes inspection and fault switches, and stops everything on shutdown or drop.
//! Does not implement the protocols.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::Schema;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use crate::admin::DirectorToken;
use crate::answers::RestFlavour;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::fault::{ActiveFault, Fault, FaultScope, FaultSlot};
use crate::peer::Role;
use crate::pki::Authority;
use crate::registry::{IssuedCertificate, Registry, RequestCounts};
use crate::server;
use crate::shared::{Addresses, CLIENT_CA_FILE, SERVER_CA_FILE, Shared};
use crate::tokens::{Protocol, TokenStore};
use crate::{admin, compass};

/// A running connector simulator. Dropping it stops the listeners (and removes its temporary
/// output folder, if it made one); [`Simulator::shutdown`] does the same and waits.
pub struct Simulator {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    _temp_dir: Option<tempfile::TempDir>,
}

async fn bind(role: Role, addr: Option<SocketAddr>) -> Result<TcpListener, SimError> {
    let addr = addr.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind {
            role: role.as_str(),
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, role: Role) -> Result<SocketAddr, SimError> {
    listener.local_addr().map_err(|source| SimError::Bind {
        role: role.as_str(),
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        source,
    })
}

async fn write(path: PathBuf, contents: &str) -> Result<(), SimError> {
    tokio::fs::write(&path, contents)
        .await
        .map_err(|source| SimError::WriteFile { path, source })
}

impl Simulator {
    /// Generates the CAs, binds the listeners, writes `server-ca.pem` and `client-ca.pem` into
    /// the output folder and starts serving on the current tokio runtime.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        config.validate()?;
        let (out_dir, temp_dir) = match &config.out_dir {
            Some(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|source| SimError::CreateDir {
                        path: dir.clone(),
                        source,
                    })?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("kyma-connector-sim-")
                    .tempdir()
                    .map_err(|source| SimError::CreateDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let schema = Schema::parse_and_validate(compass::SCHEMA, "schema.graphql")
            .map_err(|invalid| SimError::Schema(invalid.errors.to_string()))?;
        let authority = Authority::generate().await?;

        let token_listener = bind(Role::Token, config.token_addr).await?;
        let mtls_listener = bind(Role::Mtls, config.mtls_addr).await?;
        let admin_listener = bind(Role::Admin, config.admin_addr).await?;
        let addresses = Addresses {
            token: local_addr(&token_listener, Role::Token)?,
            mtls: local_addr(&mtls_listener, Role::Mtls)?,
            admin: local_addr(&admin_listener, Role::Admin)?,
        };

        let shared = Arc::new(Shared {
            app: config.app.clone(),
            validity: std::sync::Mutex::new(config.validity),
            accept_ecdsa: config.accept_ecdsa,
            addresses,
            out_dir: out_dir.clone(),
            authority,
            tokens: TokenStore::new(config.token_ttl),
            registry: Registry::default(),
            faults: FaultSlot::default(),
            schema,
            rest_flavour: Mutex::default(),
        });
        write(
            out_dir.join(SERVER_CA_FILE),
            shared.authority.server_ca_pem(),
        )
        .await?;
        write(
            out_dir.join(CLIENT_CA_FILE),
            shared.authority.client_ca_pem(),
        )
        .await?;

        let token_tls = server::tls_acceptor(&shared, Role::Token)?;
        let mtls_tls = server::tls_acceptor(&shared, Role::Mtls)?;
        let tasks = vec![
            tokio::spawn(server::serve(
                token_listener,
                Some(token_tls),
                Role::Token,
                shared.clone(),
            )),
            tokio::spawn(server::serve(
                mtls_listener,
                Some(mtls_tls),
                Role::Mtls,
                shared.clone(),
            )),
            tokio::spawn(server::serve(
                admin_listener,
                None,
                Role::Admin,
                shared.clone(),
            )),
        ];
        tracing::info!(
            token = %addresses.token,
            mtls = %addresses.mtls,
            admin = %addresses.admin,
            app = %config.app,
            validity_secs = config.validity.as_secs(),
            "connector simulator listening"
        );
        Ok(Simulator {
            shared,
            tasks,
            _temp_dir: temp_dir,
        })
    }

    /// Stops the listeners and every open connection, and waits until they are gone.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Token-secured Compass URL, `https://127.0.0.1:P/connector/graphql`.
    pub fn compass_token_url(&self) -> Url {
        self.shared.compass_token_url()
    }

    /// Certificate-secured Compass URL (mTLS), as announced in `certificateSecuredConnectorURL`.
    pub fn compass_mtls_url(&self) -> Url {
        self.shared.compass_mtls_url()
    }

    /// Kyma REST configuration URL for `token`:
    /// `https://127.0.0.1:P/v1/applications/signingRequests/info?token=..`.
    pub fn rest_info_url(&self, token: &str) -> Url {
        self.shared.rest_info_url(token)
    }

    /// Kyma REST `management/info` URL on the mTLS listener, as announced in `api.infoUrl`.
    pub fn rest_management_info_url(&self) -> Url {
        self.shared
            .rest_mtls_url("/v1/applications/management/info")
    }

    /// Base URL of the plain-HTTP admin API, `http://127.0.0.1:P/`.
    pub fn admin_url(&self) -> Url {
        self.shared.admin_url()
    }

    pub fn token_addr(&self) -> SocketAddr {
        self.shared.addresses.token
    }

    pub fn mtls_addr(&self) -> SocketAddr {
        self.shared.addresses.mtls
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.shared.addresses.admin
    }

    /// The CA that signed the listeners' certificate (trust it explicitly), PEM.
    pub fn server_ca_pem(&self) -> &str {
        self.shared.authority.server_ca_pem()
    }

    /// `<out_dir>/server-ca.pem`.
    pub fn server_ca_path(&self) -> PathBuf {
        self.shared.server_ca_path()
    }

    /// The CA that signs client certificates (returned as `caCertificate` / `caCrt`), PEM.
    pub fn client_ca_pem(&self) -> &str {
        self.shared.authority.client_ca_pem()
    }

    /// `<out_dir>/client-ca.pem`.
    pub fn client_ca_path(&self) -> PathBuf {
        self.shared.client_ca_path()
    }

    /// The folder holding the written CA files.
    pub fn out_dir(&self) -> &Path {
        self.shared.out_dir()
    }

    /// The client id / application name tokens are minted for by default.
    pub fn app(&self) -> &str {
        &self.shared.app
    }

    /// Lifetime of issued certificates.
    pub fn validity(&self) -> Duration {
        self.shared.validity()
    }

    /// Changes the lifetime of the certificates issued from now on (at least one second,
    /// at most about 100 years, like [`SimConfig::validity`]).
    pub fn set_validity(&self, validity: Duration) -> Result<(), SimError> {
        SimConfig {
            validity,
            ..SimConfig::default()
        }
        .validate()?;
        *self
            .shared
            .validity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = validity;
        Ok(())
    }

    /// Which server the REST API answers as (connector-service or the connectivity-adapter):
    /// their answers to a revoked certificate and a bad token differ.
    pub fn set_rest_flavour(&self, flavour: RestFlavour) {
        self.shared.set_rest_flavour(flavour);
    }

    /// A one-time Compass token for the configured app (use with [`Self::compass_token_url`]).
    pub fn mint_compass_token(&self) -> String {
        self.mint_token(Protocol::Compass, &self.shared.app).0
    }

    /// A one-time Kyma REST token for the configured app and its configuration URL
    /// (what a TokenRequest's `status.url` holds).
    pub fn mint_rest_token(&self) -> (String, Url) {
        self.mint_token(Protocol::KymaRest, &self.shared.app)
    }

    /// A one-time token of `protocol` for any client id, with the URL a client starts with
    /// (Compass: the token-secured URL; Kyma REST: the configuration URL).
    pub fn mint_token(&self, protocol: Protocol, client_id: &str) -> (String, Url) {
        admin::mint(&self.shared, protocol, client_id)
    }

    /// A one-time token in the Compass Director's three forms (raw, `rawEncoded`, legacy
    /// connector URL) for any client id, usable once at either connector.
    pub fn mint_director_token(&self, client_id: &str) -> DirectorToken {
        admin::mint_director(&self.shared, client_id)
    }

    /// Starts a CA rotation: from now on every returned CA bundle holds a new CA after the
    /// signing one (which keeps signing, so renewals still verify). Returns the new CA's PEM.
    pub fn announce_next_ca(&self) -> Result<String, SimError> {
        self.shared.authority.announce_next_ca()
    }

    /// Every certificate handed out so far, oldest first.
    pub fn issued_certificates(&self) -> Vec<IssuedCertificate> {
        self.shared.registry.issued()
    }

    /// The issued certificate with this SHA-256 fingerprint (hex, any case).
    pub fn issued_certificate(&self, fingerprint: &str) -> Option<IssuedCertificate> {
        self.shared.registry.find_issued(fingerprint)
    }

    /// Fingerprints of revoked certificates, sorted.
    pub fn revocations(&self) -> Vec<String> {
        self.shared.registry.revoked()
    }

    /// Revokes a certificate by fingerprint, as if its holder had called a revoke operation.
    pub fn revoke(&self, fingerprint: &str) {
        self.shared.registry.revoke(fingerprint);
    }

    /// Takes a certificate off the revocation list, as an administrator cleaning it up would.
    pub fn unrevoke(&self, fingerprint: &str) {
        self.shared.registry.unrevoke(fingerprint);
    }

    /// Requests seen per endpoint and operation, faulted ones included.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.registry.counts()
    }

    /// Switches a fault on (replacing any other) for `scope`.
    pub fn set_fault(&self, fault: Fault, scope: FaultScope) {
        self.shared.faults.set(fault, scope);
    }

    /// Switches the fault off.
    pub fn clear_fault(&self) {
        self.shared.faults.clear();
    }

    /// The fault currently on, with its remaining scope.
    pub fn active_fault(&self) -> Option<ActiveFault> {
        self.shared.faults.current()
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("app", &self.shared.app)
            .field("addresses", &self.shared.addresses)
            .field("out_dir", &self.shared.out_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
