//! A validated [`Spec`] written back as a spec file (`prefect-ecs render`, issue 13): what one
//! environment of a file amounts to, with its overlay merged, `${…}` substituted and every
//! default and derived name written out. The text is itself a valid spec without environments
//! that parses back to the same `Spec` (a unit test holds it), save that the values of worker
//! variables named like credentials are masked.

use std::fmt::Write;

use toml::Value;

use super::model::*;

/// What a masked value reads as.
pub const MASKED: &str = "(masked)";

/// Worker variables whose value `render` masks: names holding one of these words.
const SENSITIVE: &[&str] = &[
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "AUTH",
    "CREDENTIAL",
    "PRIVATE",
];

pub fn sensitive(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SENSITIVE.iter().any(|w| upper.contains(w))
}

/// One `[table]` being written.
struct Table<'a>(&'a mut String);

impl Table<'_> {
    fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let _ = writeln!(self.0, "{} = {}", key_text(key), escape(value.into()));
        self
    }

    fn opt(&mut self, key: &str, value: Option<impl Into<Value>>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }
}

/// A `$` as the file writes it: `$$`, so that reading it back substitutes nothing.
fn escape(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('$', "$$")),
        Value::Array(a) => Value::Array(a.into_iter().map(escape).collect()),
        Value::Table(t) => Value::Table(t.into_iter().map(|(k, v)| (k, escape(v))).collect()),
        other => other,
    }
}

fn key_text(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match bare {
        true => key.to_owned(),
        false => Value::from(key).to_string(),
    }
}

fn header<'a>(out: &'a mut String, name: &str) -> Table<'a> {
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "{name}");
    Table(out)
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|i| Value::String(i.to_string()))
            .collect(),
    )
}

fn inline(map: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Table(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn number(n: u32) -> Value {
    Value::Integer(n.into())
}

/// The spec as a file. `origin`: the file it came from and the environment, for the comment
/// at the top.
pub fn to_toml(spec: &Spec, origin: &str) -> String {
    let mut out = format!(
        "# {origin}{}, as prefect-ecs reads it: every default and derived name written out.\n",
        spec.env
            .as_ref()
            .map(|e| format!(" --env {e}"))
            .unwrap_or_default()
    );
    let mut t = header(&mut out, "[stack]");
    t.set("name", spec.name.as_str())
        .opt("region", spec.region.as_deref())
        .opt("account_id", spec.account_id.as_deref());
    if spec.protected {
        t.set("protected", true);
    }
    if !spec.tags.is_empty() {
        t.set("tags", inline(spec.tags.clone()));
    }

    let mut t = header(&mut out, "[prefect]");
    match &spec.prefect.cloud {
        Some(c) => t
            .set("account_id", c.account_id.as_str())
            .set("workspace_id", c.workspace_id.as_str()),
        None => t.set("api_url", spec.prefect.api_url.as_str()),
    };
    if let Some(c) = &spec.prefect.credential {
        let (env, file) = match c.kind {
            CredentialKind::ApiKey => ("api_key_env", "api_key_file"),
            CredentialKind::AuthString => ("auth_string_env", "auth_string_file"),
        };
        match &c.source {
            ApiKeySource::Env(var) => t.set(env, var.as_str()),
            ApiKeySource::File(path) => t.set(file, path.display().to_string()),
        };
    }

    let n = &spec.network;
    if let Some(e) = &n.existing {
        let tier = n.task_subnets.as_str();
        let mut t = header(&mut out, "[network]");
        t.set("vpc_id", e.vpc_id.as_str());
        match e.subnet_tags.is_empty() {
            true => t.set(&format!("{tier}_subnet_ids"), list(&e.subnet_ids)),
            false => t.set(
                &format!("{tier}_subnet_tags"),
                inline(e.subnet_tags.clone()),
            ),
        };
    } else {
        network(&mut out, n);
    }

    let mut t = header(&mut out, "[secret]");
    match &spec.secret.arn {
        Some(arn) => t.set("arn", arn.as_str()),
        None => t.set("name", spec.secret.name.as_str()).opt(
            "recovery_window_days",
            spec.secret.recovery_window_days.map(number),
        ),
    }
    .opt("kms_key_id", spec.secret.kms_key_id.as_deref());

    let iam = &spec.iam;
    let mut t = header(&mut out, "[iam]");
    t.set("execution_role_name", iam.execution_role_name.as_str())
        .set("task_role_name", iam.task_role_name.as_str())
        .set("flow_run_role", iam.flow_run_role_name.is_some())
        .opt("flow_run_role_name", iam.flow_run_role_name.as_deref())
        .set("path", iam.path.as_str())
        .opt("permissions_boundary", iam.permissions_boundary.as_deref());

    header(&mut out, "[service_discovery]").set("namespace", spec.namespace.as_str());
    header(&mut out, "[logs]")
        .set("group", spec.logs.group.as_str())
        .set("retention_days", number(spec.logs.retention_days));
    match &spec.cluster.arn {
        Some(arn) => header(&mut out, "[cluster]").set("arn", arn.as_str()),
        None => header(&mut out, "[cluster]")
            .set("name", spec.cluster.name.as_str())
            .set("container_insights", spec.cluster.container_insights),
    };
    let c = &spec.cost;
    if c.nat_gb_per_month.is_some()
        || c.log_gb_per_month.is_some()
        || c.endpoint_gb_per_month.is_some()
    {
        header(&mut out, "[cost]")
            .opt("nat_gb_per_month", c.nat_gb_per_month.map(number))
            .opt("log_gb_per_month", c.log_gb_per_month.map(number))
            .opt("endpoint_gb_per_month", c.endpoint_gb_per_month.map(number));
    }

    for w in &spec.workers {
        let mut t = header(&mut out, "[[worker]]");
        t.set("name", w.name.as_str())
            .set("family", w.family.as_str())
            .set("work_pool", w.work_pool.as_str())
            .set("image", w.image.as_str())
            .set("cpu", number(w.cpu))
            .set("memory", number(w.memory))
            .set("desired_count", number(w.desired_count))
            .set("architecture", w.architecture.as_str());
        if !w.env.is_empty() {
            let env = w.env.iter().map(|(k, v)| {
                let v = if sensitive(k) {
                    MASKED.into()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            });
            t.set("env", inline(env));
        }
    }
    for p in spec.work_pools.iter().filter(|p| p.adopt) {
        header(&mut out, "[[work_pool]]")
            .set("name", p.name.as_str())
            .set("adopt", true);
    }
    out
}

/// `[network]` of a VPC prefect-ecs makes.
fn network(out: &mut String, n: &Network) {
    let nat = match n.nat {
        NatMode::None => "none",
        NatMode::Single => "single",
        NatMode::PerAz => "per-az",
    };
    header(out, "[network]")
        .set("vpc_name", n.vpc_name.as_str())
        .set("cidr", n.cidr.to_string())
        .set("availability_zones", list(n.zones.iter().map(|z| &z.az)))
        .set(
            "public_subnets",
            list(n.zones.iter().map(|z| z.public_cidr)),
        )
        .set(
            "private_subnets",
            list(n.zones.iter().map(|z| z.private_cidr)),
        )
        .set("nat", nat)
        .set("task_subnets", n.task_subnets.as_str());
    header(out, "[network.endpoints]")
        .set("s3", n.endpoints.s3)
        .set("interface", list(&n.endpoints.interface));
}
