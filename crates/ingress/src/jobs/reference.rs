//! How a user names a job: its full id, or a prefix of at least 8 hex digits (the short id
//! every status message shows is the first 8). Dashes and case do not matter, and backticks
//! copied from a Slack message along with the id are ignored.

/// The fewest hex digits that name a job.
pub const MIN_DIGITS: usize = 8;
/// Hex digits in a full job id.
const FULL_DIGITS: usize = 32;
/// Where the printed form of an id (`1a2b3c4d-0000-5000-8000-000000000000`) has its dashes,
/// counted in hex digits before them.
const DASHES_AFTER: [usize; 4] = [8, 12, 16, 20];

/// A job reference as typed, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// What the user typed, for answers.
    pub typed: String,
    /// The start of the id in its printed form (lower case, with dashes): how record names
    /// spell it, so a listing by prefix finds it.
    pub prefix: String,
}

/// Why a word does not name a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// Hex digits, but fewer than [`MIN_DIGITS`].
    TooShort { typed: String },
    /// Not an id at all (other characters, or longer than a full id).
    NotAnId { typed: String },
}

/// Reads a job reference.
pub fn parse(typed: &str) -> Result<JobRef, RefError> {
    let word = typed.trim().trim_matches('`').trim();
    let digits: String = word
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RefError::NotAnId {
            typed: typed.to_owned(),
        });
    }
    if digits.len() < MIN_DIGITS {
        return Err(RefError::TooShort {
            typed: typed.to_owned(),
        });
    }
    if digits.len() > FULL_DIGITS {
        return Err(RefError::NotAnId {
            typed: typed.to_owned(),
        });
    }
    let mut prefix = String::with_capacity(digits.len() + DASHES_AFTER.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && DASHES_AFTER.contains(&i) {
            prefix.push('-');
        }
        prefix.push(c);
    }
    Ok(JobRef {
        typed: typed.to_owned(),
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn prefix(typed: &str) -> Result<String, RefError> {
        parse(typed).map(|r| r.prefix)
    }

    #[test]
    fn the_short_id_is_the_printed_start() {
        assert_eq!(prefix("1a2b3c4d"), Ok("1a2b3c4d".into()));
        assert_eq!(prefix(" `1A2B3C4D` "), Ok("1a2b3c4d".into()));
    }

    #[test]
    fn longer_prefixes_get_the_dashes_of_the_printed_form_wherever_the_user_put_them() {
        let id = Uuid::parse_str("1a2b3c4d-5e6f-5000-8000-00000000abcd").unwrap();
        let printed = id.to_string();
        assert_eq!(prefix(&printed), Ok(printed.clone()));
        assert_eq!(prefix(&id.simple().to_string()), Ok(printed.clone()));
        assert_eq!(prefix("1a2b3c4d5"), Ok("1a2b3c4d-5".into()));
        assert_eq!(prefix("1a2b3c4d-5e6f5"), Ok("1a2b3c4d-5e6f-5".into()));
        assert_eq!(prefix("1a2b-3c4d"), Ok("1a2b3c4d".into()));
        for n in MIN_DIGITS..=FULL_DIGITS {
            let digits: String = id.simple().to_string().chars().take(n).collect();
            let got = prefix(&digits).unwrap();
            assert!(printed.starts_with(&got), "{n}: {got}");
        }
    }

    #[test]
    fn fewer_than_8_digits_is_too_short() {
        for typed in ["1a2b3c4", "1", "1a2b-3c4"] {
            assert_eq!(
                parse(typed),
                Err(RefError::TooShort {
                    typed: typed.into()
                })
            );
        }
    }

    #[test]
    fn anything_else_is_not_an_id() {
        let too_long = "1a2b3c4d5e6f50008000000000000abcd0";
        for typed in [
            "deploy",
            "",
            "---",
            "1a2b3c4g",
            "1a2b3c4d!",
            too_long,
            "1a2b 3c4d",
        ] {
            assert_eq!(
                parse(typed),
                Err(RefError::NotAnId {
                    typed: typed.into()
                }),
                "{typed:?}"
            );
        }
    }
}
