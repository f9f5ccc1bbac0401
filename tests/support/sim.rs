//! The connector simulator for tests that drive the real binary: served by a
//! current-thread runtime on a thread of its own, so that tests stay synchronous and
//! block on processes, files and sockets while the simulator answers. Cloning shares it:
//! a certificate of a test configuration keeps the simulator it talks to.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use kyma_connector_sim::{Endpoint, IssuedCertificate, SimConfig, Simulator};

/// A running simulator; the last clone dropped stops it and joins its thread.
#[derive(Clone)]
pub struct Sim(Arc<Serving>);

struct Serving {
    sim: Option<Simulator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    pub fn start(config: SimConfig) -> Sim {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("simulator".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the simulator");
                let sim = runtime
                    .block_on(Simulator::start(config))
                    .expect("the simulator starts on loopback");
                started_tx
                    .send(sim)
                    .expect("the test waits for the simulator");
                // The simulator's tasks run while this thread blocks here.
                let _ = runtime.block_on(stopped);
            })
            .expect("a thread for the simulator");
        let sim = started_rx.recv().expect("the simulator started");
        Sim(Arc::new(Serving {
            sim: Some(sim),
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    /// Signs ECDSA P-256 requests too (fast keys keep many short-lived certificates
    /// cheap) and issues certificates valid for `validity`.
    pub fn ecdsa(validity: Duration) -> Sim {
        Sim::start(SimConfig {
            validity,
            accept_ecdsa: true,
            ..SimConfig::default()
        })
    }

    /// SHA-256 fingerprints of every certificate it issued.
    pub fn issued_fingerprints(&self) -> HashSet<String> {
        self.issued_certificates()
            .into_iter()
            .map(|c| c.fingerprint)
            .collect()
    }

    /// Certificates issued on renewal (mTLS), oldest first.
    pub fn renewals(&self) -> Vec<IssuedCertificate> {
        self.issued_certificates()
            .into_iter()
            .filter(|c| c.renewal)
            .collect()
    }

    /// Signing requests seen so far (both protocols, enrollments included).
    pub fn signing_requests(&self) -> u64 {
        let counts = self.request_counts();
        counts.get(Endpoint::CompassSign)
            + counts.get(Endpoint::RestSign)
            + counts.get(Endpoint::RestRenew)
    }
}

impl Deref for Sim {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        self.0
            .sim
            .as_ref()
            .expect("the simulator runs until dropped")
    }
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("token", &self.token_addr())
            .field("mtls", &self.mtls_addr())
            .finish()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        drop(self.sim.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
