//! Tests of the value syntax of the configuration: durations, percentages, modes, URLs,
//! user and group ids and signals, and that any other text gets a clear error.

use super::*;
use proptest::prelude::*;

#[test]
fn humane_durations_parse() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3600)));
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert!(
        parse_duration("0s")
            .unwrap_err()
            .contains("longer than zero")
    );
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn durations_render_in_the_largest_exact_unit() {
    for (secs, text) in [
        (90, "90s"),
        (1800, "30m"),
        (36 * 3600, "36h"),
        (30 * 86_400, "30d"),
    ] {
        assert_eq!(format_duration(Duration::from_secs(secs)), text);
        assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
    }
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn percentages_need_the_percent_sign() {
    assert_eq!(parse_percent("70%"), Ok(0.7));
    assert_eq!(parse_percent(" 2.5 % "), Ok(0.025));
    assert!(parse_percent("0.7").is_err());
    assert!(parse_percent("NaN%").is_err());
    assert!(parse_percent("inf%").is_err());
    assert_eq!(format_percent(0.7), "70%");
    assert_eq!(format_percent(0.025), "2.5%");
}

#[test]
fn modes_are_octal_and_sane() {
    assert_eq!(parse_mode("0644", ModeKind::Certificate), Ok(0o644));
    assert_eq!(parse_mode("640", ModeKind::Key), Ok(0o640));
    assert_eq!(parse_mode("0o600", ModeKind::Key), Ok(0o600));
    assert!(
        parse_mode("0604", ModeKind::Key)
            .unwrap_err()
            .contains("others")
    );
    assert!(
        parse_mode("0888", ModeKind::Certificate)
            .unwrap_err()
            .contains("octal")
    );
    assert!(
        parse_mode("4755", ModeKind::Certificate)
            .unwrap_err()
            .contains("setuid")
    );
    assert!(
        parse_mode("0044", ModeKind::Certificate)
            .unwrap_err()
            .contains("owner read")
    );
    assert!(parse_mode("rw-r--r--", ModeKind::Certificate).is_err());
    assert!(parse_mode("", ModeKind::Certificate).is_err());
}

#[test]
fn urls_must_be_https_unless_insecure_http_is_allowed() {
    assert!(parse_url("https://connector.example.com/graphql", false).is_ok());
    assert!(
        parse_url("http://127.0.0.1:8080/x", false)
            .unwrap_err()
            .contains("plain http")
    );
    assert!(parse_url("http://127.0.0.1:8080/x", true).is_ok());
    assert!(
        parse_url("ftp://example.com/", true)
            .unwrap_err()
            .contains("scheme")
    );
    assert!(parse_url("not a url", false).is_err());
    assert!(
        parse_url("https://user:pw@example.com/", false)
            .unwrap_err()
            .contains("password")
    );
}

#[test]
fn numeric_ids_are_accepted_and_names_resolved() {
    assert_eq!(
        resolve_id(&IdSpec::Id(1000), IdKind::User, true),
        Ok(Some(1000))
    );
    assert_eq!(
        resolve_id(&IdSpec::Name("42".into()), IdKind::Group, true),
        Ok(Some(42))
    );
    assert_eq!(
        resolve_id(&IdSpec::Name("root".into()), IdKind::User, true),
        Ok(Some(0))
    );
    assert_eq!(
        resolve_id(&IdSpec::Name("root".into()), IdKind::Group, true),
        Ok(Some(0))
    );
    assert!(resolve_id(&IdSpec::Id(-1), IdKind::User, true).is_err());
    let err = resolve_id(&IdSpec::Name("no-such-user-kc".into()), IdKind::User, true).unwrap_err();
    assert!(err.contains("no user named `no-such-user-kc`"), "{err}");
    assert_eq!(
        resolve_id(&IdSpec::Name("no-such-user-kc".into()), IdKind::User, false),
        Ok(None)
    );
}

#[test]
fn signals_accept_common_spellings() {
    assert_eq!(parse_signal("HUP"), Ok(HookSignal::Hup));
    assert_eq!(parse_signal("sigusr1"), Ok(HookSignal::Usr1));
    assert!(parse_signal("KILL").is_err());
}

/// A refusal a person can read: one non-empty line.
fn clear(reason: &str) -> bool {
    !reason.trim().is_empty() && !reason.contains('\n')
}

proptest! {
    // Cheap: many inputs.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn duration_parser_yields_a_positive_duration_or_a_clear_error(text in ".{0,40}") {
        match parse_duration(&text) {
            Ok(d) => prop_assert!(!d.is_zero()),
            Err(reason) => prop_assert!(clear(&reason), "{reason:?}"),
        }
    }

    #[test]
    fn duration_like_text_yields_a_duration_or_a_clear_error(n in any::<u64>(), unit in "(ns|us|ms|s|m|h|d|w|M|y| ){0,4}") {
        match parse_duration(&format!("{n}{unit}")) {
            Ok(d) => prop_assert!(!d.is_zero()),
            Err(reason) => prop_assert!(clear(&reason), "{reason:?}"),
        }
    }

    #[test]
    fn percent_parser_yields_a_finite_fraction_or_a_clear_error(text in ".{0,40}") {
        match parse_percent(&text) {
            Ok(f) => prop_assert!(f.is_finite()),
            Err(reason) => prop_assert!(clear(&reason), "{reason:?}"),
        }
    }

    #[test]
    fn percent_like_text_yields_a_finite_fraction_or_a_clear_error(n in any::<f64>(), sign in "[-+ ]?", tail in "(%| %|%%|e9%|)") {
        match parse_percent(&format!("{sign}{n}{tail}")) {
            Ok(f) => prop_assert!(f.is_finite()),
            Err(reason) => prop_assert!(clear(&reason), "{reason:?}"),
        }
    }

    #[test]
    fn mode_parser_yields_a_safe_key_mode_or_a_clear_error(text in "[0-7x+-]{0,6}|.{0,12}") {
        match parse_mode(&text, ModeKind::Key) {
            Ok(mode) => {
                prop_assert!(mode <= 0o777, "{mode:o}");
                prop_assert_eq!(mode & 0o007, 0, "others may read the key: {:o}", mode);
                prop_assert!(mode & 0o400 != 0, "{mode:o}");
            }
            Err(reason) => prop_assert!(clear(&reason), "{reason:?}"),
        }
    }

    #[test]
    fn formatted_durations_parse_back(secs in 1u64..100_000_000) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
