//! `docker-compose.yml` read as Docker Compose reads it, for the test that starts the service
//! binaries with each service's environment instead of containers.
//!
//! Covered: `services.<name>.environment` (map or `KEY=value` list, with `<<` merge keys and
//! anchors), `volumes` (short form `source:target[:ro]`, bind mounts of relative paths), `ports`,
//! and variable interpolation (`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`), with the variables given instead of the process's
//! environment. [`ComposeService::host_env`] then turns a container's environment into one for
//! a process on this machine: `service:port` addresses to the loopback ports where the test
//! runs that service, and paths inside bind mounts to the paths they mount.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// Why the compose file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("not YAML: {0}")]
    Yaml(#[from] yaml_rust2::ScanError),
    #[error("{0}")]
    Shape(String),
    #[error("service {service}: {problem}")]
    Interpolation { service: String, problem: String },
}

/// A bind mount of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// On this machine, resolved against the compose file's folder.
    pub source: PathBuf,
    /// Inside the container.
    pub target: String,
    pub read_only: bool,
}

/// One service of the file, interpolated.
#[derive(Debug, Clone, Default)]
pub struct ComposeService {
    /// In file order (merged keys first, as Compose lists them).
    pub environment: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// `ports` entries as written (`"3000:3000"`).
    pub ports: Vec<String>,
}

/// The services of a compose file.
#[derive(Debug)]
pub struct Compose {
    pub services: HashMap<String, ComposeService>,
}

impl Compose {
    /// Reads `path`, interpolating with `vars` (what Compose takes from the shell and `.env`).
    pub fn load(path: &Path, vars: &HashMap<String, String>) -> Result<Compose, ComposeError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ComposeError::Read(path.to_owned(), e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let docs = YamlLoader::load_from_str(&text)?;
        let root = docs
            .first()
            .ok_or_else(|| ComposeError::Shape("empty file".into()))?;
        let services = root["services"]
            .as_hash()
            .ok_or_else(|| ComposeError::Shape("no `services` mapping".into()))?;
        let mut out = HashMap::new();
        for (name, service) in services {
            let name = name
                .as_str()
                .ok_or_else(|| ComposeError::Shape("a service name is not a string".into()))?;
            let fail = |problem: String| ComposeError::Interpolation {
                service: name.to_owned(),
                problem,
            };
            let mut parsed = ComposeService::default();
            for (key, value) in environment(&service["environment"])? {
                parsed
                    .environment
                    .push((key, interpolate(&value, vars).map_err(fail)?));
            }
            for entry in strings(&service["volumes"])? {
                let entry = interpolate(&entry, vars).map_err(fail)?;
                if let Some(mount) = bind_mount(&entry, dir) {
                    parsed.mounts.push(mount);
                }
            }
            for entry in strings(&service["ports"])? {
                parsed.ports.push(interpolate(&entry, vars).map_err(fail)?);
            }
            out.insert(name.to_owned(), parsed);
        }
        Ok(Compose { services: out })
    }
}

impl ComposeService {
    /// The value of `key` in this service's environment.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The environment for running this service's binary on this machine: every
    /// `from` (`azurite:10001`) in a value replaced by its `to` (`127.0.0.1:PORT`), and a value
    /// that is a path inside a bind mount's target replaced by the path on this machine.
    pub fn host_env(&self, addresses: &[(String, String)]) -> Vec<(String, String)> {
        self.environment
            .iter()
            .map(|(key, value)| {
                let mut value = value.clone();
                for (from, to) in addresses {
                    value = value.replace(from.as_str(), to);
                }
                for mount in &self.mounts {
                    if let Some(rest) = value.strip_prefix(mount.target.as_str())
                        && (rest.is_empty() || rest.starts_with('/'))
                    {
                        value = format!("{}{rest}", mount.source.display());
                        break;
                    }
                }
                (key.clone(), value)
            })
            .collect()
    }
}

/// `environment:` as (key, raw value) pairs: a mapping (with `<<` merges) or a `KEY=value` list.
fn environment(node: &Yaml) -> Result<Vec<(String, String)>, ComposeError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match node {
        Yaml::BadValue | Yaml::Null => {}
        Yaml::Array(items) => {
            for item in items {
                let item = scalar(item).ok_or_else(|| {
                    ComposeError::Shape("an environment entry is not text".into())
                })?;
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                pairs.push((k.to_owned(), v.to_owned()));
            }
        }
        Yaml::Hash(map) => {
            for (key, value) in map {
                let key = scalar(key)
                    .ok_or_else(|| ComposeError::Shape("an environment key is not text".into()))?;
                if key == "<<" {
                    let merged = match value {
                        Yaml::Array(items) => items.clone(),
                        other => vec![other.clone()],
                    };
                    for m in &merged {
                        for (k, v) in environment(m)? {
                            set(&mut pairs, k, v);
                        }
                    }
                } else {
                    set(&mut pairs, key, scalar(value).unwrap_or_default());
                }
            }
        }
        _ => {
            return Err(ComposeError::Shape(
                "`environment` is neither map nor list".into(),
            ));
        }
    }
    Ok(pairs)
}

/// Sets `key`, replacing an earlier (merged) value: the service's own keys win.
fn set(pairs: &mut Vec<(String, String)>, key: String, value: String) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key, value)),
    }
}

/// A list of scalars (`volumes:`, `ports:`), or nothing.
fn strings(node: &Yaml) -> Result<Vec<String>, ComposeError> {
    match node {
        Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
        Yaml::Array(items) => items
            .iter()
            .map(|i| {
                scalar(i).ok_or_else(|| ComposeError::Shape("a list entry is not text".into()))
            })
            .collect(),
        _ => Err(ComposeError::Shape("expected a list".into())),
    }
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// `./src:/target[:ro]`: a bind mount of a path (named volumes are left out).
fn bind_mount(entry: &str, dir: &Path) -> Option<Mount> {
    let mut parts = entry.split(':');
    let source = parts.next()?;
    let target = parts.next()?;
    let read_only = parts.next() == Some("ro");
    if !(source.starts_with('.') || source.starts_with('/')) {
        return None;
    }
    Some(Mount {
        source: dir.join(source),
        target: target.to_owned(),
        read_only,
    })
}

/// Compose's variable interpolation, with `vars` as the environment.
pub fn interpolate(text: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
            out.push_str(&braced(&tail[..end], vars)?);
            rest = &tail[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                return Err(format!("a lone `$` in {text:?} (write `$$`)"));
            }
            out.push_str(vars.get(&after[..len]).map_or("", String::as_str));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The inside of `${…}`.
fn braced(expr: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let name_len = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let value = vars.get(name).map(String::as_str);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let result = match op {
        "" => value.unwrap_or_default().to_owned(),
        _ if op.starts_with(":-") => match value {
            Some(v) if set_nonempty => v.to_owned(),
            _ => op[2..].to_owned(),
        },
        _ if op.starts_with(":?") => match value {
            Some(v) if set_nonempty => v.to_owned(),
            _ => return Err(format!("{name}: {}", &op[2..])),
        },
        _ if op.starts_with('-') => value.map_or_else(|| op[1..].to_owned(), str::to_owned),
        _ if op.starts_with('?') => match value {
            Some(v) => v.to_owned(),
            None => return Err(format!("{name}: {}", &op[1..])),
        },
        _ => return Err(format!("unsupported `${{{expr}}}`")),
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_compose() {
        let vars: HashMap<String, String> = [("A", "a"), ("E", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let i = |s: &str| interpolate(s, &vars);
        assert_eq!(i("x$A-${A}$$").as_deref(), Ok("xa-a$"));
        assert_eq!(i("${E:-d}|${E-d}|${U-d}").as_deref(), Ok("d||d"));
        assert_eq!(i("${U}").as_deref(), Ok(""));
        assert!(i("${E:?need E}").is_err_and(|e| e.contains("need E")));
        assert_eq!(i("${E?need E}").as_deref(), Ok(""));
    }

    #[test]
    fn merge_keys_mounts_and_host_paths() {
        let dir = std::env::temp_dir().join(format!("compose-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("docker-compose.yml");
        std::fs::write(
            &file,
            "x-e: &e\n  A: \"http://db:1/x\"\n  B: one\nservices:\n  s:\n    environment:\n      <<: *e\n      B: two\n      C: /etc/app/cat.toml\n    volumes:\n      - ./cat.toml:/etc/app/cat.toml:ro\n      - data:/data\n",
        )
        .unwrap();
        let compose = Compose::load(&file, &HashMap::new()).unwrap();
        let s = &compose.services["s"];
        assert_eq!(s.var("B"), Some("two"));
        assert_eq!(s.mounts.len(), 1);
        let env: HashMap<_, _> = s
            .host_env(&[("db:1".into(), "127.0.0.1:9".into())])
            .into_iter()
            .collect();
        assert_eq!(env["A"], "http://127.0.0.1:9/x");
        assert_eq!(
            env["C"],
            dir.join("./cat.toml").display().to_string(),
            "a path in a bind mount maps to its source"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
