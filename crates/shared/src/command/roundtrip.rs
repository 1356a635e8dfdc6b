//! Property tests: any value written with [`quote`] is read back by [`parse`] unchanged, alone,
//! after `name=`, and among other words.

use super::*;
use proptest::prelude::*;

/// Characters the language treats specially, and a few that are easy to get wrong (Slack's
/// typographic quotes, whitespace other than the space, multi-byte and hidden characters).
const SPECIAL: &[char] = &[
    '"', '\'', '\\', '=', ' ', '\t', '\n', '\u{A0}', '\u{3000}', '\u{201C}', '\u{201D}',
    '\u{2018}', '\u{2019}', 'é', '漢', '🚀', '\u{200B}', '\u{202E}', 'a', 'Z', '0', '-', '_',
];

/// Any string, with the special characters drawn often enough to meet each other.
fn value() -> impl Strategy<Value = String> {
    let c = prop_oneof![any::<char>(), proptest::sample::select(SPECIAL)];
    proptest::collection::vec(c, 0..24).prop_map(|cs| cs.into_iter().collect())
}

/// A parameter name as the catalog allows them.
fn name() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(&['a', 'Z', '_'][..]),
        proptest::collection::vec(proptest::sample::select(&['a', '9', '_', '-'][..]), 0..8),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_quoted_value_reads_back_as_itself(v in value()) {
        let parsed = parse(&format!("rb {}", quote(&v))).unwrap();
        prop_assert_eq!(parsed.args, vec![Arg::Positional(v)]);
    }

    #[test]
    fn a_quoted_value_after_a_name_reads_back_as_itself(n in name(), v in value()) {
        let parsed = parse(&format!("rb {n}={}", quote(&v))).unwrap();
        prop_assert_eq!(parsed.args, vec![Arg::Named { name: n, value: v }]);
    }

    #[test]
    fn quoted_values_among_others_keep_their_places(
        values in proptest::collection::vec((proptest::option::of(name()), value()), 0..6)
    ) {
        let text: Vec<String> = values
            .iter()
            .map(|(n, v)| match n {
                Some(n) => format!("{n}={}", quote(v)),
                None => quote(v),
            })
            .collect();
        let parsed = parse(&format!("rb {}", text.join(" "))).unwrap();
        let expected: Vec<Arg> = values
            .into_iter()
            .map(|(n, v)| match n {
                Some(name) => Arg::Named { name, value: v },
                None => Arg::Positional(v),
            })
            .collect();
        prop_assert_eq!(parsed.args, expected);
    }
}
