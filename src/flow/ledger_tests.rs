use std::time::{Duration, SystemTime};

use super::*;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn attempt(at: u64, fingerprint: &str, outcome: Attempted) -> Fact {
    Fact::Attempt {
        at: t(at),
        fingerprint: fingerprint.to_owned(),
        outcome,
    }
}

fn failure(evidence: Option<Evidence>) -> Attempted {
    Attempted::Failed {
        error: "boom".into(),
        evidence,
    }
}

#[test]
fn the_connectors_revoked_stands_until_a_renewal_and_a_refusal_only_while_latest() {
    let refused = failure(Some(Evidence::Refused("tls alert unknown_ca".into())));
    let state = with_facts(StateFile::default(), &[attempt(0, "a", refused.clone())]);
    assert_eq!(state.refusal_of("a"), Some("tls alert unknown_ca"));
    // A network failure after a refusal: nothing is known any more.
    let state = with_facts(state, &[attempt(1, "a", failure(None))]);
    assert_eq!(
        (state.refusal_of("a"), state.consecutive_failures),
        (None, 2)
    );

    let state = with_facts(
        StateFile::default(),
        &[attempt(0, "a", failure(Some(Evidence::Revoked)))],
    );
    // Neither a gateway's refusal nor a network failure un-says the connector's words,
    // and the revocation keeps the time it was first said.
    let state = with_facts(
        state,
        &[attempt(5, "a", refused), attempt(9, "a", failure(None))],
    );
    assert!(state.is_revoked("a"));
    assert_eq!(state.revoked.as_ref().unwrap().at, t(0));
    let state = with_facts(state, &[attempt(10, "a", Attempted::Renewed)]);
    assert!(!state.is_revoked("a"));
    assert_eq!(
        (state.consecutive_failures, state.last_error.as_deref()),
        (0, None)
    );
    assert_eq!(state.last_success, Some(t(10)));
}

#[test]
fn an_outcome_lands_on_the_certificate_the_attempt_used_and_a_new_one_starts_a_new_streak() {
    let state = with_facts(
        StateFile::default(),
        &[
            attempt(0, "old", failure(None)),
            attempt(1, "old", failure(None)),
        ],
    );
    assert_eq!(state.consecutive_failures, 2);
    let state = with_facts(
        state,
        &[attempt(2, "new", failure(Some(Evidence::Revoked)))],
    );
    assert_eq!(state.consecutive_failures, 1);
    assert_eq!(state.attempted.as_deref(), Some("new"));
    assert!(state.is_revoked("new") && !state.is_revoked("old"));
}

#[test]
fn hook_rounds_add_up_per_certificate_and_a_new_certificate_starts_afresh() {
    let round = |at, fp: &str, ok: &[&str], error: Option<&str>| Fact::HooksRound {
        at: t(at),
        fingerprint: fp.into(),
        succeeded: ok.iter().map(|k| k.to_string()).collect(),
        error: error.map(str::to_owned),
    };
    let state = with_facts(
        StateFile::default(),
        &[
            round(0, "a", &["x"], Some("y failed")),
            round(30, "a", &[], Some("y failed")),
        ],
    );
    let n = state.notified.as_ref().unwrap();
    assert_eq!(
        (n.delivered.clone(), n.failures, n.failed_at),
        (vec!["x".to_owned()], 2, Some(t(30)))
    );
    let state = with_facts(state, &[round(90, "a", &["y"], None)]);
    let n = state.notified.as_ref().unwrap();
    assert_eq!((n.delivered.len(), n.failures, n.failed_at), (2, 0, None));
    let state = with_facts(state, &[round(100, "b", &[], Some("z"))]);
    let n = state.notified.unwrap();
    assert_eq!(
        (n.fingerprint.as_str(), n.delivered.len(), n.failures),
        ("b", 0, 1)
    );
}

#[test]
fn recording_reads_the_file_under_the_lock_and_loses_nothing_written_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let store = Store::new(&crate::store::tests::config(
        &dir,
        crate::config::Layout::Symlink,
    ));
    // Recording never creates a vanished directory.
    assert!(record(&store, &[attempt(0, "a", failure(None))]).is_err());
    assert!(!dir.exists(), "the record recreated {}", dir.display());

    std::fs::create_dir(&dir).unwrap();
    record(&store, &[Fact::TokenUsed { hash: "h1".into() }]).unwrap();
    // Someone else's write between two of ours survives.
    let mut other = store.read_state().unwrap();
    other.token_error = Some("refused".into());
    store.write_state(&other).unwrap();
    let state = record(&store, &[attempt(0, "a", failure(None))]).unwrap();
    assert_eq!(state.used_tokens, ["h1"]);
    assert_eq!(state.token_error.as_deref(), Some("refused"));
    assert_eq!(state.consecutive_failures, 1);
    assert_eq!(store.read_state().unwrap(), state);
}
