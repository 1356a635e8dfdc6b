//! What a Slack ID looks like (`U012AB3CD`, `C024BE91L`): the one rule both the catalog (which
//! refuses anything else in `allow`) and the runner's messages (which mention only real IDs)
//! apply.

/// The longest ID accepted; Slack's are 9 to 11 characters today.
const MAX_LEN: usize = 32;

/// `^[<first>][A-Z0-9]{2,31}$`: one of the `first` letters (`U`/`W` users, `C`/`G`/`D`
/// conversations), then upper-case letters and digits.
pub fn is_slack_id(s: &str, first: &[char]) -> bool {
    (3..=MAX_LEN).contains(&s.len())
        && s.starts_with(first)
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_kind_letter_and_a_bounded_length() {
        assert!(is_slack_id("U012AB3CD", &['U', 'W']));
        assert!(is_slack_id("W12", &['U', 'W']));
        assert!(!is_slack_id("U1", &['U', 'W']), "too short");
        assert!(
            !is_slack_id(&format!("U{}", "1".repeat(32)), &['U']),
            "too long"
        );
        assert!(is_slack_id(&format!("U{}", "1".repeat(31)), &['U']));
        assert!(
            !is_slack_id("C024BE91L", &['U', 'W']),
            "a channel is not a user"
        );
        assert!(!is_slack_id("U1> <!here", &['U']));
        assert!(!is_slack_id("u012ab3cd", &['U']));
        assert!(!is_slack_id("", &['U']));
    }
}
