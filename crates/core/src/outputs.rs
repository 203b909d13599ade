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
