//! Where the Automation account is: [`ArmConfig`], read from the environment, and ARM's
//! defaults for the public cloud.

use chatops_shared::config::{ConfigError, EnvSource, optional, url as url_var};
use url::Url;

/// The Automation api-version this client speaks.
pub const API_VERSION: &str = "2024-10-23";
/// ARM in the public cloud.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// The token scope for ARM in the public cloud.
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

/// Where the Automation account is and how to get a token for it.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `AZURE_SUBSCRIPTION_ID` | subscription of the Automation account | required* |
/// | `AUTOMATION_RESOURCE_GROUP` | its resource group | required* |
/// | `AUTOMATION_ACCOUNT` | the Automation account | required* |
/// | `CHATOPS_ARM_ENDPOINT` | ARM base URL (other clouds differ) | `https://management.azure.com` |
/// | `CHATOPS_ARM_SCOPE` | token scope for ARM | `https://management.azure.com/.default` |
/// | `CHATOPS_ARM_READS_PER_SECOND` | this runner's share of the subscription's ARM read budget (25/s refill), shared by all its ARM reads; decimals allowed | `5` |
///
/// \* Azure Automation is off when none of the three is set; setting only some is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmConfig {
    pub endpoint: Url,
    pub subscription_id: String,
    pub resource_group: String,
    pub account: String,
    pub scope: String,
    /// `CHATOPS_ARM_READS_PER_SECOND`; `None`: reads are not paced (tests only).
    pub reads_per_second: Option<f64>,
}

/// The default read share: ARM refills a subscription's reads at 25/s per principal, and the
/// runner replicas share one identity; 5/s leaves room for 5 replicas, or for other tools
/// of the same identity. Deployments with more replicas set 25 / replicas (infra/bicep does).
pub const DEFAULT_READS_PER_SECOND: f64 = 5.0;

impl ArmConfig {
    /// Reads the variables in the table above; `Ok(None)` when Automation is not configured.
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<Self>, ConfigError> {
        const VARS: [&str; 3] = [
            "AZURE_SUBSCRIPTION_ID",
            "AUTOMATION_RESOURCE_GROUP",
            "AUTOMATION_ACCOUNT",
        ];
        let values = VARS.map(|v| optional(env, v));
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = VARS
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(var, _)| *var)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::new(
                &missing.join(", "),
                format!("Azure Automation needs all of {}", VARS.join(", ")),
            ));
        }
        let [subscription_id, resource_group, account] = values.map(Option::unwrap_or_default);
        let endpoint = match url_var(env, "CHATOPS_ARM_ENDPOINT")? {
            Some(u) => u,
            None => Url::parse(DEFAULT_ENDPOINT)
                .map_err(|e| ConfigError::new("CHATOPS_ARM_ENDPOINT", e.to_string()))?,
        };
        let scope = optional(env, "CHATOPS_ARM_SCOPE").unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        let reads_per_second = match optional(env, "CHATOPS_ARM_READS_PER_SECOND") {
            None => DEFAULT_READS_PER_SECOND,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && (0.01..=1000.0).contains(r))
                .ok_or_else(|| {
                    ConfigError::new(
                        "CHATOPS_ARM_READS_PER_SECOND",
                        format!("`{v}` is not a number of reads per second between 0.01 and 1000"),
                    )
                })?,
        };
        Ok(Some(ArmConfig {
            endpoint,
            subscription_id,
            resource_group,
            account,
            scope,
            reads_per_second: Some(reads_per_second),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_is_off_complete_or_an_error() {
        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(ArmConfig::from_env(&none), Ok(None));
        let some = HashMap::from([("AUTOMATION_ACCOUNT", "a")]);
        let e = ArmConfig::from_env(&some).unwrap_err();
        assert_eq!(e.var, "AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP");
        let all = HashMap::from([
            ("AZURE_SUBSCRIPTION_ID", "s"),
            ("AUTOMATION_RESOURCE_GROUP", "rg"),
            ("AUTOMATION_ACCOUNT", "a"),
            ("CHATOPS_ARM_ENDPOINT", "http://127.0.0.1:9/arm/"),
        ]);
        let config = ArmConfig::from_env(&all).unwrap().unwrap();
        assert_eq!(config.scope, DEFAULT_SCOPE);
        assert_eq!(config.reads_per_second, Some(DEFAULT_READS_PER_SECOND));
        let mut shared = all.clone();
        shared.insert("CHATOPS_ARM_READS_PER_SECOND", "2.5");
        let config = ArmConfig::from_env(&shared).unwrap().unwrap();
        assert_eq!(config.reads_per_second, Some(2.5));
        for bad in ["0", "-1", "fast", "NaN"] {
            shared.insert("CHATOPS_ARM_READS_PER_SECOND", bad);
            let e = ArmConfig::from_env(&shared).unwrap_err();
            assert_eq!(e.var, "CHATOPS_ARM_READS_PER_SECOND");
        }
    }
}
