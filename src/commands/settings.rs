//! Flags and environment resolved once, for every command: where AWS is, which region, how
//! output looks, and the spec with its credential.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use miette::{IntoDiagnostic, Result, miette};

use crate::cli::{AwsFlags, SpecFlags, Tuning};
use crate::provider::{Aws, Connection, PrefectApi, resolve_region};
use crate::render::human::Style;
use crate::secret::SecretValue;
use crate::spec::{self, ApiKeySource, Spec};

/// What the command line and the environment say, resolved once.
#[derive(Clone)]
pub struct Settings {
    pub conn: Connection,
    pub style: Style,
    pub parallelism: u16,
    pub timeout: Duration,
    pub lock_lease: Duration,
    /// `--env` (or PREFECT_ECS_ENV): the spec file's environment.
    pub env: Option<String>,
    /// `--var-file` then `--var`: values for `${KEY}`, over the environment's.
    pub vars: BTreeMap<String, String>,
}

impl Settings {
    /// For a command without AWS flags or tuning: the defaults (`--region` where it names
    /// zones only). The environment stands in for the flags a command does not take.
    pub fn resolve(no_color: bool) -> Settings {
        // Colour only for a terminal, and never when asked not to (`--no-color`, `NO_COLOR`).
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            conn: Connection {
                region: None,
                // AWS_PROFILE is aws-config's own to read; `profile` is the flag's alone.
                profile: None,
                endpoint_url: env("AWS_ENDPOINT_URL"),
            },
            style: Style {
                color: !no_color
                    && !no_color_env
                    && std::io::IsTerminal::is_terminal(&std::io::stdout()),
            },
            parallelism: 10,
            timeout: env("PREFECT_ECS_TIMEOUT")
                .and_then(|t| humantime::parse_duration(&t).ok())
                .unwrap_or(Duration::from_secs(20 * 60)),
            lock_lease: Duration::from_secs(60),
            env: None,
            vars: BTreeMap::new(),
        }
    }

    /// The command's environment and variables: `--var-file` read, `--var` over it.
    pub fn with_inputs(mut self, inputs: &SpecFlags) -> Result<Settings> {
        self.env = inputs.env.clone().filter(|e| !e.is_empty());
        if let Some(file) = &inputs.var_file {
            self.vars = read_var_file(file)?;
        }
        for var in &inputs.vars {
            let (key, value) = crate::cli::parse_var(var).map_err(|e| miette!("{e}"))?;
            self.vars.insert(key, value);
        }
        Ok(self)
    }

    /// The command's AWS flags over the environment's.
    pub fn with_aws(mut self, aws: &AwsFlags) -> Settings {
        self.conn.region = aws.region.clone().or(self.conn.region);
        self.conn.profile = aws.profile.clone().or(self.conn.profile);
        self.conn.endpoint_url = aws.endpoint_url.clone().or(self.conn.endpoint_url);
        self
    }

    pub fn with_region(mut self, region: Option<&String>) -> Settings {
        self.conn.region = region.cloned().or(self.conn.region);
        self
    }

    pub fn with_tuning(mut self, t: &Tuning) -> Settings {
        self.parallelism = t.parallelism;
        self.timeout = t.timeout;
        self.lock_lease = t.lock_lease;
        self
    }

    /// The region without asking AWS's config chain: the spec's, `--region`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`. For what needs no AWS call (validation, `graph`).
    pub fn region_hint(&self, spec_region: Option<&str>) -> Option<String> {
        spec_region
            .map(str::to_owned)
            .or_else(|| self.conn.region.clone())
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
    }

    /// The one rule for the region a command talks to: the spec's (a `--region` that differs
    /// is an error: a stack lives in one region), else `--region`, else the AWS config chain
    /// (environment, profile). The chain is asked only when the spec names no region.
    pub async fn region(&self, spec_region: Option<&str>) -> Result<String> {
        match (spec_region, &self.conn.region) {
            (Some(s), Some(r)) if r != s => Err(miette!(
                "the spec's region is {s} but --region says {r}: a stack lives in one region"
            )),
            (Some(s), _) => Ok(s.to_owned()),
            (None, _) => resolve_region(&self.conn).await.ok_or_else(|| {
                miette!("no AWS region: set [stack] region in the spec, --region, or AWS_REGION")
            }),
        }
    }

    /// The spec at `path` for `--env`, validated; `${VAR}` from `--var`, else the environment.
    pub fn load(&self, path: &Path) -> Result<Spec> {
        self.load_in(path, self.env.as_deref())
    }

    /// [`Settings::load`] for environment `env`.
    pub fn load_in(&self, path: &Path, env: Option<&str>) -> Result<Spec> {
        let lookup = |k: &str| self.vars.get(k).cloned().or_else(|| std::env::var(k).ok());
        let region = self.region_hint(None);
        Ok(spec::load_env(path, &lookup, region.as_deref(), env)?)
    }
}

/// `--var-file`: a TOML table of strings, numbers and booleans, each a value for `${KEY}`.
fn read_var_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette!("cannot read --var-file {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| miette!("--var-file {} is not TOML: {}", path.display(), e.message()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(miette!(
                        "--var-file {}: {key} is a {}; a variable is a string, a whole number or a boolean",
                        path.display(),
                        other.type_str()
                    ));
                }
            };
            Ok((key, text))
        })
        .collect()
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
}

/// The API key or auth string, from where the spec says; never from the spec itself. `None`
/// for a server without auth.
pub fn credential(spec: &Spec) -> Result<Option<SecretValue>> {
    let Some(credential) = &spec.prefect.credential else {
        return Ok(None);
    };
    let what = credential.kind.describe();
    let value = match &credential.source {
        ApiKeySource::Env(var) => std::env::var(var).map_err(|_| {
            miette!(
                "secret \"{}\": {var} is not set (the {what}, needed to create and compare the secret)",
                spec.secret.name
            )
        })?,
        // Already relative to the spec's folder (`spec::load` resolved it).
        ApiKeySource::File(f) => {
            std::fs::read_to_string(f)
                .map_err(|e| {
                    miette!(
                        "secret \"{}\": cannot read the {what} file {}: {e}",
                        spec.secret.name,
                        f.display()
                    )
                })?
                .trim()
                .to_string()
        }
    };
    if value.is_empty() {
        return Err(miette!(
            "secret \"{}\": the {what} is empty",
            spec.secret.name
        ));
    }
    Ok(Some(SecretValue::new(value)))
}

/// The client of the stack's Prefect API, authenticated with the credential's value.
pub fn prefect_api(
    spec: &Spec,
    value: Option<SecretValue>,
) -> std::result::Result<PrefectApi, crate::apply::ProviderError> {
    let auth = spec.prefect.credential.as_ref().zip(value);
    PrefectApi::new(
        &spec.prefect.api_url,
        auth.map(|(c, v)| (c.kind, v)),
        spec.prefect.cloud.is_some(),
    )
}

impl Settings {
    /// A connection for commands that touch only AWS, for `stack` (`force-unlock`, `verify`).
    pub async fn connect_aws(&self, stack: &str, region: &str, deadline: Duration) -> Aws {
        let provider = crate::provider::Settings {
            stack: stack.to_owned(),
            wait: false,
            recovery_window_days: None,
            deadline,
            log_group: None,
            pools: Default::default(),
            redact: None,
        };
        Aws::connect(&self.conn, region, provider).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, bug 2: `plan stacks/prod.toml` read `stacks/stacks/secrets/…`. The spec
    /// resolves `api_key_file` against its own folder once; the credential reads that path.
    #[test]
    fn api_key_file_is_read_relative_to_the_spec_once() {
        // A folder of its own in the package's folder (where unit tests run), so that the
        // spec is named by a relative path with a folder, as a user types it.
        let cwd_relative = Path::new("target-test-spec-dir");
        let spec_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(cwd_relative);
        std::fs::create_dir_all(spec_dir.join("secrets")).expect("spec dir");
        let source =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/prod.toml"))
                .expect("stacks/prod.toml");
        std::fs::write(spec_dir.join("prod.toml"), source).expect("spec");
        std::fs::write(
            spec_dir.join("secrets/prefect-api-key.txt"),
            "pnu_relative_key\n",
        )
        .expect("key file");
        let env = |k: &str| match k {
            "PREFECT_ACCOUNT_ID" => Some("9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f".to_string()),
            "PREFECT_WORKSPACE_ID" => Some("3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99".to_string()),
            _ => Some("x".to_string()),
        };
        // Unit tests run in the package's folder: the same relative path a user types.
        let spec = spec::load(&cwd_relative.join("prod.toml"), &env, Some("eu-west-1"));
        let result = spec.map(|s| credential(&s));
        std::fs::remove_dir_all(&spec_dir).expect("clean up");
        let value = result
            .expect("the spec is valid")
            .expect("the key file is read")
            .expect("a credential");
        assert!(value.expose() == "pnu_relative_key");
    }
}
