//! The TLS side of the listeners: the server certificate, and the mTLS listener refusing
//! missing, foreign and expired client certificates at the handshake.

mod common;

use std::time::Duration;

use common::*;
use kyma_connector_sim::{Fault, FaultScope, SimConfig, Simulator};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer};
use reqwest::StatusCode;
use serde_json::json;
use x509_parser::prelude::*;

async fn mtls_configuration(
    sim: &Simulator,
    client: &reqwest::Client,
) -> Result<StatusCode, reqwest::Error> {
    client
        .post(sim.compass_mtls_url())
        .json_body(&json!({"query": "{ configuration { token { token } } }"}))
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test]
async fn the_server_certificate_is_valid_for_localhost_and_127_0_0_1() {
    let sim = start().await;
    let client = client(&sim);
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/v1/health", sim.token_addr().port());
        let response = client
            .get(url)
            .send()
            .await
            .expect("tls handshake succeeds");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_server_ca_file_holds_the_server_ca() {
    let sim = start().await;
    let written = std::fs::read_to_string(sim.server_ca_path()).expect("server-ca.pem exists");
    assert_eq!(written, sim.server_ca_pem());
    let written = std::fs::read_to_string(sim.client_ca_path()).expect("client-ca.pem exists");
    assert_eq!(written, sim.client_ca_pem());
}

#[tokio::test]
async fn the_mtls_listener_refuses_a_client_without_certificate() {
    let sim = start().await;
    assert!(mtls_configuration(&sim, &client(&sim)).await.is_err());
    assert_eq!(
        sim.request_counts().total(),
        0,
        "no request got past the handshake"
    );
}

#[tokio::test]
async fn the_mtls_listener_refuses_a_certificate_from_a_foreign_ca() {
    let sim = start().await;
    let ca_key = ecdsa_key();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kyma-connector-sim client CA");
    let ca = Issuer::new(ca_params, ca_key);
    let key = rsa_key();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in subject("my-app") {
        params.distinguished_name.push(ty, value);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca).expect("foreign cert signs");
    let foreign = mtls_client(&sim, &cert.pem(), &key.serialize_pem());
    assert!(mtls_configuration(&sim, &foreign).await.is_err());
    assert_eq!(
        sim.request_counts().total(),
        0,
        "no request got past the handshake"
    );
}

#[tokio::test]
async fn the_mtls_listener_refuses_an_expired_certificate() {
    let sim = start().await;
    sim.set_fault(Fault::ExpiredCertificate, FaultScope::Next(1));
    let key = rsa_key();
    let expired = rest_enroll(&sim, &key).await;
    let der = first_der(&expired.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(!cert.validity().is_valid());
    let client = mtls_client(&sim, &expired.cert_pem, &expired.key_pem);
    let before = sim.request_counts().total();
    assert!(mtls_configuration(&sim, &client).await.is_err());
    assert_eq!(
        sim.request_counts().total(),
        before,
        "no request got past the handshake"
    );
}

#[tokio::test]
async fn a_short_lived_certificate_stops_opening_the_mtls_listener_when_it_expires() {
    let sim = start_with(SimConfig {
        validity: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let enrolled = compass_enroll(&sim, &rsa_key()).await;
    let client = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    assert_eq!(
        mtls_configuration(&sim, &client).await.ok(),
        Some(StatusCode::OK)
    );
    let refused = eventually(Duration::from_secs(10), || async {
        // A fresh client: a new handshake each time.
        let client = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
        mtls_configuration(&sim, &client).await.is_err()
    })
    .await;
    assert!(refused, "the expired certificate still opened the listener");
}

#[tokio::test]
async fn dropping_the_simulator_closes_its_listeners() {
    let sim = start().await;
    let addr = sim.token_addr();
    drop(sim);
    let closed = eventually(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(closed, "the token listener still accepts after drop");
}

#[tokio::test]
async fn shutdown_closes_all_listeners_at_once() {
    let sim = start().await;
    let addrs = [sim.token_addr(), sim.mtls_addr(), sim.admin_addr()];
    sim.shutdown().await;
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_also_runs_on_a_multi_thread_runtime() {
    let sim = start().await;
    let enrolled = compass_enroll(&sim, &rsa_key()).await;
    let client = mtls_client(&sim, &enrolled.cert_pem, &enrolled.key_pem);
    assert_eq!(
        mtls_configuration(&sim, &client).await.ok(),
        Some(StatusCode::OK)
    );
}
