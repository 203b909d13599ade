//! Saved plans (`plan --out FILE`, `apply FILE`, `show FILE`): versioned JSON holding the plan
//! document people reviewed, plus what it was computed from — the spec file's digest and a
//! fingerprint of every desired and every observed resource. Apply recomputes the plan and
//! refuses unless all of it is unchanged, naming what moved. Pure: the caller does the IO.
//!
//! No secret value is ever stored: the API key (desired and observed) is represented by
//! [`SecretValue::keyed_digest`](crate::secret::SecretValue::keyed_digest) only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::normalize;
use crate::graph::StackGraph;
use crate::model::{Attrs, Kind, ObservedState};
use crate::render::PlanDoc;
use crate::secret::SecretValue;

/// What the first field of every saved plan says, so `apply` can tell a plan from a spec.
pub const FORMAT: &str = "prefect-ecs-plan";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub format: String,
    pub format_version: u32,
    pub prefect_ecs_version: String,
    pub created_at: String,
    /// The spec as given to `plan`: `apply FILE` loads it from there.
    pub spec_path: String,
    pub spec_sha256: String,
    pub region: String,
    /// Random per file; part of every secret digest's label.
    pub salt: String,
    /// Desired resources by address.
    pub desired: BTreeMap<String, Fingerprint>,
    /// Observed resources by address (a duplicate address holds several).
    pub observed: BTreeMap<String, Vec<Fingerprint>>,
    pub plan: PlanDoc,
}

/// A resource reduced to digests: one per attribute, so a difference can be named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The physical id (observed resources only).
    pub id: Option<String>,
    pub attrs: BTreeMap<String, String>,
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn digest(v: &Value) -> String {
    sha256(v.to_string().as_bytes())
}

fn secret_label(salt: &str) -> String {
    format!("prefect-ecs saved plan, secret value, salt {salt}")
}

fn attr_digests(
    kind: Kind,
    attrs: &Attrs,
    sensitive: Option<&SecretValue>,
    salt: &str,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), digest(&normalize(kind, k, v))))
        .collect();
    if let Some(s) = sensitive {
        out.insert("value".into(), s.keyed_digest(&secret_label(salt)));
    }
    out
}

fn fingerprints(
    salt: &str,
    graph: &StackGraph,
    observed: &ObservedState,
) -> (
    BTreeMap<String, Fingerprint>,
    BTreeMap<String, Vec<Fingerprint>>,
) {
    let desired = graph
        .resources()
        .map(|d| {
            (
                d.address.to_string(),
                Fingerprint {
                    id: None,
                    attrs: attr_digests(d.address.kind, &d.attrs, d.sensitive.as_ref(), salt),
                },
            )
        })
        .collect();
    let mut seen: BTreeMap<String, Vec<Fingerprint>> = BTreeMap::new();
    for o in &observed.resources {
        let mut attrs = attr_digests(o.address.kind, &o.attrs, o.sensitive.as_ref(), salt);
        // What apply uses besides the attributes: the ids others refer to, what it uses, and
        // whether it is already being deleted.
        let mut uses = o.uses.clone();
        uses.sort();
        attrs.insert("(outputs)".into(), digest(&serde_json::json!(o.outputs)));
        attrs.insert("(uses)".into(), digest(&serde_json::json!(uses)));
        attrs.insert("(deleting)".into(), digest(&Value::Bool(o.deleting)));
        seen.entry(o.address.to_string())
            .or_default()
            .push(Fingerprint {
                id: Some(o.id.clone()),
                attrs,
            });
    }
    for v in seen.values_mut() {
        v.sort_by(|a, b| a.id.cmp(&b.id));
    }
    (desired, seen)
}

/// 128 bits from the operating system's generator: the salt of the file's secret digest.
fn random_salt() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    hex::encode(bytes)
}

/// Everything `apply FILE` compares against, as found now.
pub struct Basis<'a> {
    pub spec_bytes: &'a [u8],
    pub region: &'a str,
    pub graph: &'a StackGraph,
    pub observed: &'a ObservedState,
}

impl PlanFile {
    pub fn new(spec_path: &str, basis: &Basis, plan: PlanDoc) -> PlanFile {
        let salt = random_salt();
        let (desired, observed) = fingerprints(&salt, basis.graph, basis.observed);
        PlanFile {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            prefect_ecs_version: env!("CARGO_PKG_VERSION").into(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            spec_path: spec_path.into(),
            spec_sha256: sha256(basis.spec_bytes),
            region: basis.region.into(),
            salt,
            desired,
            observed,
            plan,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("a plan file serializes");
        b.push(b'\n');
        b
    }

    /// `Ok(None)`: not a saved plan at all (e.g. a TOML spec).
    pub fn parse(bytes: &[u8]) -> Result<Option<PlanFile>, String> {
        // A TOML spec cannot start with `{`; a saved plan always does.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(None);
        }
        let head: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(format!(
                "not a prefect-ecs saved plan (no \"format\": \"{FORMAT}\")"
            ));
        }
        let version = head.get("format_version").and_then(Value::as_u64);
        if version != Some(FORMAT_VERSION.into()) {
            return Err(format!(
                "saved plan format version {} is not supported by this prefect-ecs (it reads version {FORMAT_VERSION}): make the plan again with this version",
                version.map_or("(none)".into(), |v| v.to_string())
            ));
        }
        let mut file: PlanFile =
            serde_json::from_value(head).map_err(|e| format!("damaged saved plan: {e}"))?;
        file.plan.restore_unknowns();
        Ok(Some(file))
    }

    /// Every way the world differs from when the plan was made; empty when it is still valid.
    pub fn stale(&self, now: &Basis, plan_now: &PlanDoc) -> Vec<String> {
        let mut out = Vec::new();
        if now.region != self.region {
            out.push(format!(
                "region: planned for {}, now {}",
                self.region, now.region
            ));
        }
        let (desired, observed) = fingerprints(&self.salt, now.graph, now.observed);
        let mut what = Vec::new();
        compare(&single(&self.desired), &single(&desired), &mut what);
        if sha256(now.spec_bytes) != self.spec_sha256 {
            out.push(format!("spec {}: the file changed", self.spec_path));
        } else if !what.is_empty() {
            // The same file can mean something else: its `${VAR}`s, the API key.
            out.push("the spec's inputs (environment variables, the API key) changed".into());
        }
        out.extend(what.into_iter().map(|w| format!("  desired {w}")));
        let mut what = Vec::new();
        compare(&self.observed, &observed, &mut what);
        if !what.is_empty() {
            out.push("AWS resources changed since the plan:".into());
            out.extend(what.into_iter().map(|w| format!("  {w}")));
        }
        // The cost follows from the changes; a plan saved before it was priced is not stale.
        let unpriced = |d: &PlanDoc| PlanDoc {
            cost: None,
            target: None,
            existing: Vec::new(),
            ..d.clone()
        };
        if out.is_empty() && unpriced(plan_now) != unpriced(&self.plan) {
            // Each address once, in the order of the saved plan, then the new one's.
            let mut changed: Vec<&str> = Vec::new();
            for a in self
                .plan
                .changes
                .iter()
                .chain(&plan_now.changes)
                .map(|c| c.address.as_str())
            {
                let find = |d: &PlanDoc| d.changes.iter().find(|c| c.address == a).cloned();
                if !changed.contains(&a) && find(&self.plan) != find(plan_now) {
                    changed.push(a);
                }
            }
            out.push(format!(
                "the plan computed now differs for: {}",
                changed.join(", ")
            ));
        }
        if !out.is_empty() && plan_now.is_empty() && !self.plan.is_empty() {
            // The usual cause by far: a pipeline re-running its apply step.
            out.insert(
                0,
                "the stack already matches the spec: this plan was most likely applied already"
                    .into(),
            );
        }
        out
    }
}

fn single(m: &BTreeMap<String, Fingerprint>) -> BTreeMap<String, Vec<Fingerprint>> {
    m.iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .collect()
}

/// One line per address whose fingerprints differ, naming the attributes.
fn compare(
    then: &BTreeMap<String, Vec<Fingerprint>>,
    now: &BTreeMap<String, Vec<Fingerprint>>,
    out: &mut Vec<String>,
) {
    let empty = Vec::new();
    let addresses: std::collections::BTreeSet<&String> = then.keys().chain(now.keys()).collect();
    for a in addresses {
        let (t, n) = (then.get(a).unwrap_or(&empty), now.get(a).unwrap_or(&empty));
        if t == n {
            continue;
        }
        let ids = |v: &[Fingerprint]| {
            let ids: Vec<&str> = v.iter().filter_map(|f| f.id.as_deref()).collect();
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", ids.join(", "))
            }
        };
        let line = match (t.as_slice(), n.as_slice()) {
            ([], _) => format!("{a}: appeared{}", ids(n)),
            (_, []) => format!("{a}: gone{}", ids(t)),
            ([t], [n]) if t.id != n.id => format!(
                "{a}: replaced outside prefect-ecs (id {} → {})",
                t.id.as_deref().unwrap_or("?"),
                n.id.as_deref().unwrap_or("?")
            ),
            ([t], [n]) => {
                let keys: std::collections::BTreeSet<&String> =
                    t.attrs.keys().chain(n.attrs.keys()).collect();
                let changed: Vec<&str> = keys
                    .into_iter()
                    .filter(|k| t.attrs.get(*k) != n.attrs.get(*k))
                    .map(|k| k.as_str())
                    .collect();
                format!("{a}: {} changed", changed.join(", "))
            }
            _ => format!("{a}: instances changed:{} →{}", ids(t), ids(n)),
        };
        out.push(line);
    }
}
