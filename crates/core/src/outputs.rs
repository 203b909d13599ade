//! `prefect-ecs output`: the identifiers people need from a running stack (to point other
//! tools at it), taken from what discovery found. Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Kind, Observed, ObservedState};

fn arn_or_id(o: &Observed) -> String {
    o.outputs
        .get("arn")
        .cloned()
        .unwrap_or_else(|| o.id.clone())
}

/// Named identifiers, in a stable order; lists ordered by index (`subnet.public[0]` first).
pub fn collect(observed: &ObservedState) -> BTreeMap<String, Value> {
    let mut found: Vec<&Observed> = observed.resources.iter().filter(|o| !o.deleting).collect();
    found.sort_by_key(|o| index_order(o));
    let one = |kind: Kind, name: &str| {
        found
            .iter()
            .find(|o| o.address.kind == kind && o.address.name == name)
            .copied()
    };
    let many = |kind: Kind, prefix: &str| -> Vec<&Observed> {
        found
            .iter()
            .filter(|o| o.address.kind == kind && o.address.name.starts_with(prefix))
            .copied()
            .collect()
    };
    let mut out = BTreeMap::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(key.to_string(), v);
        }
    };
    let ids = |v: Vec<&Observed>| {
        (!v.is_empty()).then(|| json!(v.iter().map(|o| &o.id).collect::<Vec<_>>()))
    };
    put("vpc_id", one(Kind::Vpc, "main").map(|o| json!(o.id)));
    put("public_subnet_ids", ids(many(Kind::Subnet, "public[")));
    put("private_subnet_ids", ids(many(Kind::Subnet, "private[")));
    put("nat_gateway_ids", ids(many(Kind::NatGateway, "nat[")));
    put(
        "security_group_id",
        one(Kind::SecurityGroup, "worker").map(|o| json!(o.id)),
    );
    put(
        "cluster_arn",
        one(Kind::EcsCluster, "main").map(|o| json!(arn_or_id(o))),
    );
    put(
        "log_group",
        one(Kind::LogGroup, "workers").map(|o| json!(o.outputs.get("name").unwrap_or(&o.id))),
    );
    put(
        "secret_arn",
        one(Kind::Secret, "api_key").map(|o| json!(arn_or_id(o))),
    );
    put(
        "execution_role_arn",
        one(Kind::IamRole, "execution").map(|o| json!(arn_or_id(o))),
    );
    put(
        "task_role_arn",
        one(Kind::IamRole, "task").map(|o| json!(arn_or_id(o))),
    );
    put(
        "flow_run_role_arn",
        one(Kind::IamRole, "flow_run").map(|o| json!(arn_or_id(o))),
    );
    let pools: Vec<&str> = found
        .iter()
        .filter(|o| o.address.kind == Kind::WorkPool)
        .map(|o| o.address.name.as_str())
        .collect();
    put("work_pools", (!pools.is_empty()).then(|| json!(pools)));
    put(
        "namespace_id",
        one(Kind::Namespace, "main").map(|o| json!(o.id)),
    );
    let workers: BTreeMap<&str, Value> = found
        .iter()
        .filter(|o| o.address.kind == Kind::EcsService)
        .map(|s| {
            let name = s.address.name.as_str();
            let arn = |k: Kind| one(k, name).map(arn_or_id);
            (
                name,
                json!({
                    "service_arn": arn_or_id(s),
                    "task_definition_arn": arn(Kind::TaskDefinition),
                    "cloud_map_service_arn": arn(Kind::CloudMapService),
                }),
            )
        })
        .collect();
    put("services", (!workers.is_empty()).then(|| json!(workers)));
    out
}

/// One output by name; a dotted name reaches inside (`services.dev-worker.service_arn`).
pub fn lookup<'a>(outputs: &'a BTreeMap<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = outputs.get(name) {
        return Some(v);
    }
    // Longest top-level key first: worker names may hold dots only after it.
    let (top, rest) = name.split_once('.')?;
    let mut v = outputs.get(top)?;
    let mut rest = rest;
    loop {
        let map = v.as_object()?;
        if let Some(found) = map.get(rest) {
            return Some(found);
        }
        // A key may itself hold dots (a worker name): try every split, longest key first.
        let (key, more) = map
            .keys()
            .filter_map(|k| {
                rest.strip_prefix(k.as_str())?
                    .strip_prefix('.')
                    .map(|m| (k, m))
            })
            .max_by_key(|(k, _)| k.len())?;
        v = &map[key];
        rest = more;
    }
}

/// `value` as `output --raw` prints it: a string as is, a number or boolean as written;
/// `None` for a list or a map (use `--json`).
pub fn raw(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// `name[10]` after `name[9]`.
fn index_order(o: &Observed) -> (Kind, String, usize) {
    let (base, index) = match o.address.name.split_once('[') {
        Some((b, i)) => (b, i.trim_end_matches(']').parse().unwrap_or(0)),
        None => (o.address.name.as_str(), 0),
    };
    (o.address.kind, base.to_string(), index)
}

/// `key = value` lines, keys aligned; lists and maps as compact JSON.
pub fn render(outputs: &BTreeMap<String, Value>) -> String {
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    outputs
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k:<width$} = {s}\n"),
            other => format!("{k:<width$} = {other}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_output_by_name_reaches_inside_maps_and_prints_raw_only_scalars() {
        let outputs = BTreeMap::from([
            ("vpc_id".to_string(), json!("vpc-1")),
            ("private_subnet_ids".to_string(), json!(["subnet-1"])),
            (
                "services".to_string(),
                json!({"etl.v2": {"service_arn": "arn:s2"}, "etl": {"service_arn": "arn:s"}}),
            ),
        ]);
        assert_eq!(lookup(&outputs, "vpc_id"), Some(&json!("vpc-1")));
        assert_eq!(
            lookup(&outputs, "services.etl.service_arn"),
            Some(&json!("arn:s"))
        );
        assert_eq!(
            lookup(&outputs, "services.etl.v2.service_arn"),
            Some(&json!("arn:s2"))
        );
        assert_eq!(lookup(&outputs, "services.nope"), None);
        assert_eq!(lookup(&outputs, "nope"), None);
        assert_eq!(raw(&json!("vpc-1")).as_deref(), Some("vpc-1"));
        assert_eq!(raw(&json!(["a"])), None);
    }
}
