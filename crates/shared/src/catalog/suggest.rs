//! "Did you mean …?" for mistyped runbook and parameter names.

/// The candidate closest to `word` when it is at most two edits away (ignoring case); the
/// first such candidate on a tie.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("restart-web", "restrat-web"), 2);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn closest_within_two_edits() {
        let names = ["restart-web", "restart-db", "deploy"];
        assert_eq!(closest("restart-wbe", names), Some("restart-web"));
        assert_eq!(closest("RESTART-DB", names), Some("restart-db"));
        assert_eq!(closest("deplyo", names), Some("deploy"));
        assert_eq!(closest("rollback", names), None);
        assert_eq!(closest("x", []), None);
    }
}
