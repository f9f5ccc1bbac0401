//! The first key a process generates costs about what the key itself costs: aws-lc seeds
//! its random generator from the operating system, not from CPU jitter entropy, whose
//! first use takes about 30 ms of CPU in every process (see `.cargo/config.toml`). One
//! test in its own file, so that nothing in this process used aws-lc before.

use std::time::Duration;

use kyma_certd::config::KeyAlgorithm;
use kyma_certd::keys::PrivateKey;

/// CPU time this thread has used, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let nanos: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(nanos)
}

#[test]
fn the_first_key_of_a_process_costs_under_ten_milliseconds_of_cpu() {
    let before = thread_cpu();
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let used = thread_cpu() - before;
    assert!(
        used < Duration::from_millis(10),
        "the first ECDSA key of the process took {used:?} of CPU: is aws-lc seeding from CPU jitter entropy?"
    );
}
