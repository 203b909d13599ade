//! The vocabulary shared by graph, diff, plan, executor and provider: resource kinds, addresses,
//! attribute values with references, the desired and the observed resource. Pure data.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use crate::kinds::KindDef;
use crate::secret::SecretValue;

/// Tag keys that mark a resource as this tool's.
pub const TAG_STACK: &str = "prefect-ecs:stack";
pub const TAG_ADDRESS: &str = "prefect-ecs:address";
/// A digest of the desired attributes a resource was last applied from. Equal to the digest
/// of the spec now, any difference was made outside prefect-ecs: drift, not a spec change.
pub const TAG_SPEC: &str = "prefect-ecs:spec";
/// On a work pool that existed before prefect-ecs managed it: destroy leaves it in place.
pub const TAG_ADOPTED: &str = "prefect-ecs:adopted";

macro_rules! kinds {
    ($($variant:ident => $module:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind { $($variant),* }

        impl Kind {
            pub const ALL: &[Kind] = &[$(Kind::$variant),*];

            /// The kind's definition, in its module under `kinds/`.
            pub fn def(self) -> &'static KindDef {
                match self { $(Kind::$variant => &crate::kinds::$module::DEF),* }
            }
        }
    };
}

// The registry: every kind and the module that defines it. Adding a kind is a line here, its
// module under `kinds/`, its provider module (`src/provider/kinds/`) and its graph expansion.
kinds! {
    Vpc => vpc,
    Subnet => subnet,
    InternetGateway => internet_gateway,
    Eip => eip,
    NatGateway => nat_gateway,
    RouteTable => route_table,
    SecurityGroup => security_group,
    VpcEndpoint => vpc_endpoint,
    IamRole => iam_role,
    IamRolePolicy => iam_role_policy,
    Secret => secret,
    Namespace => namespace,
    CloudMapService => cloud_map_service,
    LogGroup => log_group,
    SqsQueue => sqs_queue,
    EventRule => event_rule,
    SqsQueuePolicy => sqs_queue_policy,
    EcsCluster => ecs_cluster,
    TaskDefinition => task_definition,
    EcsService => ecs_service,
    WorkPool => work_pool,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.def().name
    }

    /// Counts toward `--parallelism` ([`KindDef::aws`]).
    pub fn is_aws(self) -> bool {
        self.def().aws
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// A stable, human-readable resource address: `subnet.private[1]`, `ecs_service.dev-worker`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub kind: Kind,
    pub name: String,
}

impl Address {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Address {
            kind,
            name: name.into(),
        }
    }

    pub fn indexed(kind: Kind, name: &str, index: usize) -> Self {
        Address {
            kind,
            name: format!("{name}[{index}]"),
        }
    }

    pub fn parse(s: &str) -> Option<Address> {
        let (kind, name) = s.split_once('.')?;
        Some(Address {
            kind: Kind::parse(kind)?,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.name)
    }
}

/// Attributes of a resource as JSON values. Desired attributes may hold references
/// (see [`reference`]) that resolve to another resource's output.
pub type Attrs = BTreeMap<String, Value>;

/// Outputs of an existing resource that others refer to: `id`, `arn`, `name`.
pub type Outputs = BTreeMap<String, String>;

const REF: &str = "$ref";
const REF_OUTPUT: &str = "$output";

/// A reference to `output` (`id`, `arn`, `name`) of the resource at `address`.
pub fn reference(address: &Address, output: &str) -> Value {
    json!({ REF: address.to_string(), REF_OUTPUT: output })
}

/// The address and output a value refers to, if it is a reference.
pub fn as_reference(v: &Value) -> Option<(Address, &str)> {
    let obj = v.as_object()?;
    if obj.len() != 2 {
        return None;
    }
    let addr = Address::parse(obj.get(REF)?.as_str()?)?;
    Some((addr, obj.get(REF_OUTPUT)?.as_str()?))
}

/// Every address referred to anywhere inside `v`.
pub fn references_in(v: &Value, out: &mut Vec<Address>) {
    if let Some((a, _)) = as_reference(v) {
        out.push(a);
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| references_in(i, out)),
        Value::Object(map) => map.values().for_each(|i| references_in(i, out)),
        _ => {}
    }
}

/// The placeholder for a value that is known only after apply.
pub const UNKNOWN: &str = "(known after apply)";

/// Replace references by the outputs `lookup` knows; unknown ones become [`Unknown`] markers
/// when `lookup` has nothing (plan time), so the diff can tell "changes" from "unknown".
pub fn resolve(v: &Value, lookup: &dyn Fn(&Address, &str) -> Option<String>) -> Value {
    if let Some((a, out)) = as_reference(v) {
        return match lookup(&a, out) {
            Some(s) => Value::String(s),
            None => unknown(),
        };
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| resolve(i, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), resolve(i, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn unknown() -> Value {
    json!({ "$unknown": true })
}

pub fn is_unknown(v: &Value) -> bool {
    v.get("$unknown").is_some()
}

pub fn contains_unknown(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Object(map) => is_unknown(v) || map.values().any(contains_unknown),
        _ => false,
    }
}

/// A resource as the spec wants it.
#[derive(Debug, Clone)]
pub struct Desired {
    pub address: Address,
    pub attrs: Attrs,
    /// Ordering needs beyond the references in `attrs` (e.g. NAT after the IGW is attached).
    pub extra_deps: Vec<Address>,
    /// The one sensitive value (the secret's), compared but never shown.
    pub sensitive: Option<SecretValue>,
    /// Top-level attributes set on create but never diffed afterwards (a service's desired
    /// count that auto scaling owns): a difference there is no change, and an update sends
    /// the value AWS has.
    pub ignore_changes: Vec<String>,
}

impl Desired {
    pub fn new(address: Address, attrs: Attrs) -> Self {
        Desired {
            address,
            attrs,
            extra_deps: Vec::new(),
            ignore_changes: Vec::new(),
            sensitive: None,
        }
    }

    /// Every resource this one must come after.
    pub fn deps(&self) -> Vec<Address> {
        let mut out = Vec::new();
        for v in self.attrs.values() {
            references_in(v, &mut out);
        }
        out.extend(self.extra_deps.iter().cloned());
        out.sort();
        out.dedup();
        out
    }
}

/// A resource as found in AWS, owned by this stack.
#[derive(Debug, Clone)]
pub struct Observed {
    pub address: Address,
    /// The physical id: VPC id, role name, ARN… whatever the provider deletes it by.
    pub id: String,
    pub outputs: Outputs,
    /// Normalized attributes, comparable with resolved desired attributes.
    pub attrs: Attrs,
    /// Physical ids (or ARNs) of other resources this one uses; they are deleted after it.
    pub uses: Vec<String>,
    /// The secret's current value, compared with the desired one and never shown.
    pub sensitive: Option<SecretValue>,
    /// Already on its way out (a secret in its recovery window): deleting it again is a no-op.
    pub deleting: bool,
}

impl Observed {
    /// Whether this resource uses `other` in AWS: one of its `uses` is `other`'s id or one of
    /// its outputs (an ARN, a URL). What orders deletions where the spec's graph does not.
    pub fn refers_to(&self, other: &Observed) -> bool {
        self.uses
            .iter()
            .any(|id| *id == other.id || other.outputs.values().any(|out| out == id))
    }

    /// Adopted (a work pool that existed before the stack): never deleted by prefect-ecs.
    pub fn adopted(&self) -> bool {
        self.attrs
            .get("tags")
            .and_then(|t| t.get(TAG_ADOPTED))
            .and_then(Value::as_str)
            == Some("true")
    }
}

/// A same-named resource that is not this stack's: plan refuses to touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub address: Address,
    pub description: String,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct ObservedState {
    pub resources: Vec<Observed>,
    pub conflicts: Vec<Conflict>,
    /// Existing resources the spec names read only (`[cluster] arn`, `[secret] arn`) that are
    /// not there, a sentence each: a plan to the spec refuses them, destroy does not need them.
    pub missing: Vec<String>,
}

/// The tags every resource of the stack carries.
pub fn ownership_tags(stack: &str, address: &Address, user: &BTreeMap<String, String>) -> Value {
    let mut tags: BTreeMap<String, String> = user.clone();
    tags.insert(TAG_STACK.into(), stack.into());
    tags.insert(TAG_ADDRESS.into(), address.to_string());
    json!(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips() {
        let a = Address::indexed(Kind::Subnet, "private", 1);
        assert_eq!(a.to_string(), "subnet.private[1]");
        assert_eq!(Address::parse("subnet.private[1]"), Some(a));
        assert_eq!(
            Address::parse("ecs_service.dev-worker"),
            Some(Address::new(Kind::EcsService, "dev-worker"))
        );
        assert_eq!(Address::parse("nope.x"), None);
    }

    #[test]
    fn references_resolve_or_become_unknown() {
        let vpc = Address::new(Kind::Vpc, "main");
        let v = json!({"vpc_id": reference(&vpc, "id"), "list": [reference(&vpc, "arn")]});
        let mut refs = Vec::new();
        references_in(&v, &mut refs);
        assert_eq!(refs, vec![vpc.clone(), vpc.clone()]);
        let resolved = resolve(&v, &|a, o| {
            (o == "id" && *a == vpc).then(|| "vpc-1".to_string())
        });
        assert_eq!(resolved["vpc_id"], "vpc-1");
        assert!(is_unknown(&resolved["list"][0]));
        assert!(contains_unknown(&resolved));
    }
}
