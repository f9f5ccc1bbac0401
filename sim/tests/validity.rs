//! The certificate lifetime can be changed while the simulator runs.

mod common;

use std::time::Duration;

use kyma_connector_sim::SimConfig;

#[tokio::test]
async fn certificates_issued_after_set_validity_have_the_new_lifetime() {
    let sim = common::start_with(SimConfig {
        validity: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    common::compass_enroll(&sim, &common::rsa_key()).await;
    sim.set_validity(Duration::from_secs(7200)).unwrap();
    assert_eq!(sim.validity(), Duration::from_secs(7200));
    common::compass_enroll(&sim, &common::rsa_key()).await;
    let lifetimes: Vec<u64> = sim
        .issued_certificates()
        .iter()
        .map(|c| c.not_after.duration_since(c.not_before).unwrap().as_secs())
        .collect();
    assert_eq!(lifetimes, [60, 7200]);
    assert!(sim.set_validity(Duration::ZERO).is_err());
    assert_eq!(sim.validity(), Duration::from_secs(7200));
}
