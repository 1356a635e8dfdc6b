//! Secret values kept out of what a job shows: its output and its error (the live tail, the
//! kept output, the record, the final status). A script printing its own secret is its
//! business, but Azure Automation repeats a bound value in its own errors (`Cannot convert value
//! "…" to type …`), and nothing the runner shows should carry one.

use super::Worker;
use crate::executor::Outcome;
use chatops_shared::job::JobMessage;

/// What a masked value is shown as.
const MASK: &str = "•••";
/// Values shorter than this are left: masking every `1` or `on` would garble the output, and
/// such a value hides nothing.
const MIN_MASKED: usize = 4;

/// The values to mask in one job's output and error.
#[derive(Debug, Clone, Default)]
pub(super) struct SecretValues(Vec<String>);

impl SecretValues {
    /// Every masked text of `text`.
    pub(super) fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for value in &self.0 {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), MASK);
            }
        }
        text
    }

    /// Where `text` can be cut for now without cutting a secret value in two: before the
    /// longest end of it that a value begins with. A batch of live output that ends with
    /// `hunt` while the secret is `hunter22` holds `hunt` back until the output goes on, so
    /// that no two batches show a value in pieces that masking each on its own would miss.
    pub(super) fn safe_cut(&self, text: &str) -> usize {
        let mut cut = text.len();
        for value in &self.0 {
            // The proper beginnings of the value, longest first; the first that ends `text`
            // holds back the most this value can need.
            let begins = value
                .char_indices()
                .rev()
                .filter(|&(end, _)| end > 0)
                .map(|(end, _)| &value[..end]);
            for begin in begins {
                if text.ends_with(begin) {
                    cut = cut.min(text.len() - begin.len());
                    break;
                }
            }
        }
        cut
    }

    pub(super) fn mask_outcome(&self, mut outcome: Outcome) -> Outcome {
        if !self.0.is_empty() {
            outcome.output = self.mask(&outcome.output);
            outcome.error = outcome.error.map(|e| self.mask(&e));
        }
        outcome
    }
}

impl Worker {
    /// The values of the job's secret parameters: secret by the message or by this runner's
    /// catalog, given or filled in from the catalog (a secret's `default` or `fixed`).
    pub(super) fn secret_values(&self, job: &JobMessage) -> SecretValues {
        let catalog = self.catalog.current();
        let runbook = catalog.get(&job.runbook);
        let by_catalog = runbook.map(|rb| rb.secret_params()).unwrap_or_default();
        let filled_in = runbook
            .map(|rb| rb.secret_catalog_values())
            .unwrap_or_default();
        let mut values: Vec<String> = job
            .secret_params
            .iter()
            .chain(&by_catalog)
            .filter_map(|name| job.params.get(name))
            .chain(&filled_in)
            .filter(|v| v.chars().count() >= MIN_MASKED)
            .cloned()
            .collect();
        // Longest first, so that a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        SecretValues(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_never_falls_inside_a_secret_value() {
        let values = SecretValues(vec!["hunter22".into(), "é-pass".into()]);
        assert_eq!(values.safe_cut("token: hunt"), "token: ".len());
        assert_eq!(values.safe_cut("token: h"), "token: ".len());
        // A whole value is masked in this batch: nothing to hold back.
        assert_eq!(values.safe_cut("token: hunter22"), "token: hunter22".len());
        assert_eq!(values.safe_cut("token: hunter2 "), "token: hunter2 ".len());
        assert_eq!(values.safe_cut("line\n"), "line\n".len());
        assert_eq!(values.safe_cut("x é"), "x ".len());
        assert_eq!(values.safe_cut(""), 0);
        // The value that needs the most held back decides.
        let nested = SecretValues(vec!["abcabd".into(), "cab".into()]);
        assert_eq!(nested.safe_cut("zzabca"), 2);
    }

    #[test]
    fn secret_values_are_masked_in_output_and_error_and_short_ones_left() {
        let values = SecretValues(vec!["hunter22".into()]);
        let mut outcome = Outcome::without_run(
            crate::executor::FinalState::Failed,
            "Cannot convert value \"hunter22\" to type int",
        );
        outcome.output = "token hunter22 used; 1 on".into();
        let masked = values.mask_outcome(outcome);
        assert_eq!(masked.output, "token ••• used; 1 on");
        assert_eq!(
            masked.error.as_deref(),
            Some("Cannot convert value \"•••\" to type int")
        );
    }
}
