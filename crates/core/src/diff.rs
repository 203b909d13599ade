//! Desired vs observed attributes, normalized so that what AWS reorders, re-encodes or fills in
//! never shows as a change. Pure.

use serde_json::Value;

use crate::kinds::Shape;
use crate::model::{Kind, Observed, contains_unknown};
use crate::secret::SecretValue;

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrDiff {
    pub attr: String,
    /// The observed value (`None`: absent). Never set for a sensitive attribute.
    pub before: Option<Value>,
    /// The desired value; may contain unknown markers. Never set for a sensitive attribute.
    pub after: Option<Value>,
    pub forces_replacement: bool,
    pub sensitive: bool,
}

/// Canonical form of `kind`'s attribute `attr` as its definition shapes it: tags without
/// AWS-reserved keys, policy documents in one shape, arrays sorted unless the kind says their
/// order means something.
pub fn normalize(kind: Kind, attr: &str, v: &Value) -> Value {
    let def = kind.def();
    let v = match def.shape(attr) {
        Shape::Policy => normalize_policy(v),
        Shape::Tags => strip_aws_tags(v),
        Shape::Value => v.clone(),
    };
    sort_arrays(&v, attr, def.ordered)
}

fn strip_aws_tags(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with("aws:"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sort_arrays(v: &Value, key: &str, ordered: &[&str]) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> =
                items.iter().map(|i| sort_arrays(i, key, ordered)).collect();
            if !ordered.contains(&key) {
                items.sort_by_key(|i| i.to_string());
                items.dedup();
            }
            Value::Array(items)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| (k.clone(), sort_arrays(i, k, ordered)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// IAM accepts a string where it means a one-element list, and answers either way.
fn normalize_policy(v: &Value) -> Value {
    let Some(doc) = v.as_object() else {
        return v.clone();
    };
    let mut doc = doc.clone();
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(single) => vec![single.clone()],
        None => vec![],
    };
    let statements: Vec<Value> = statements
        .into_iter()
        .map(|s| {
            let Value::Object(mut s) = s else { return s };
            for key in ["Action", "NotAction", "Resource", "NotResource"] {
                if let Some(v) = s.get_mut(key) {
                    *v = as_list(v);
                }
            }
            if let Some(Value::Object(p)) = s.get_mut("Principal") {
                for v in p.values_mut() {
                    *v = as_list(v);
                }
            }
            Value::Object(s)
        })
        .collect();
    doc.insert("Statement".into(), Value::Array(statements));
    Value::Object(doc)
}

fn as_list(v: &Value) -> Value {
    match v {
        Value::Array(_) => v.clone(),
        other => Value::Array(vec![other.clone()]),
    }
}

/// The attributes of `desired` (resolved as far as known) that differ from `observed`.
pub fn compare(
    kind: Kind,
    desired: &crate::model::Attrs,
    desired_sensitive: Option<&SecretValue>,
    observed: &Observed,
) -> Vec<AttrDiff> {
    let def = kind.def();
    let mut out = Vec::new();
    for (attr, want) in desired {
        let have = observed.attrs.get(attr);
        if have.is_none() && def.optional(attr) {
            continue;
        }
        let want_n = normalize(kind, attr, want);
        let unknown = contains_unknown(want);
        if !unknown && have.map(|h| normalize(kind, attr, h)).as_ref() == Some(&want_n) {
            continue;
        }
        out.push(AttrDiff {
            attr: attr.clone(),
            before: have.cloned(),
            after: Some(want.clone()),
            forces_replacement: def.replaces(attr),
            sensitive: false,
        });
    }
    if let Some(want) = desired_sensitive
        && observed.sensitive.as_ref() != Some(want)
    {
        out.push(AttrDiff {
            attr: "value".into(),
            before: None,
            after: None,
            forces_replacement: false,
            sensitive: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Address, Attrs, unknown};
    use serde_json::json;

    fn observed(kind: Kind, attrs: Attrs) -> Observed {
        Observed {
            address: Address::new(kind, "x"),
            id: "x".into(),
            outputs: Default::default(),
            attrs,
            uses: vec![],
            sensitive: None,
            deleting: false,
        }
    }

    fn attrs(v: Value) -> Attrs {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn reordered_environment_and_tags_are_no_change() {
        let want = attrs(json!({
            "container": {"environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "command": ["a", "b"]},
            "tags": {"x": "1", "y": "2"}
        }));
        let have = attrs(json!({
            "container": {"environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}], "command": ["a", "b"]},
            "tags": {"y": "2", "x": "1", "aws:cloudformation:stack": "z"}
        }));
        assert!(
            compare(
                Kind::TaskDefinition,
                &want,
                None,
                &observed(Kind::TaskDefinition, have)
            )
            .is_empty()
        );
    }

    #[test]
    fn command_order_matters() {
        let want = attrs(json!({"container": {"command": ["a", "b"]}}));
        let have = attrs(json!({"container": {"command": ["b", "a"]}}));
        let d = compare(
            Kind::TaskDefinition,
            &want,
            None,
            &observed(Kind::TaskDefinition, have),
        );
        assert_eq!(d.len(), 1);
        assert!(d[0].forces_replacement);
    }

    #[test]
    fn policy_in_string_or_list_form_is_no_change() {
        let want = attrs(json!({"document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["b:Y", "a:X"], "Resource": ["*"]}]}}));
        let have = attrs(json!({"document": {"Version": "2012-10-17", "Statement":
            {"Effect": "Allow", "Action": ["a:X", "b:Y"], "Resource": "*"}}}));
        assert!(
            compare(
                Kind::IamRolePolicy,
                &want,
                None,
                &observed(Kind::IamRolePolicy, have)
            )
            .is_empty()
        );
    }

    #[test]
    fn replacement_names_the_attribute() {
        let want = attrs(json!({"cidr_block": "10.1.0.0/16", "enable_dns_support": true}));
        let have = attrs(json!({"cidr_block": "10.0.0.0/16", "enable_dns_support": false}));
        let d = compare(Kind::Vpc, &want, None, &observed(Kind::Vpc, have));
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].attr.as_str(), d[0].forces_replacement),
            ("cidr_block", true)
        );
        assert_eq!(
            (d[1].attr.as_str(), d[1].forces_replacement),
            ("enable_dns_support", false)
        );
    }

    #[test]
    fn unknown_values_always_differ() {
        let want = attrs(json!({"vpc_id": unknown()}));
        let have = attrs(json!({"vpc_id": "vpc-1"}));
        let d = compare(Kind::Subnet, &want, None, &observed(Kind::Subnet, have));
        assert!(d[0].forces_replacement);
    }

    #[test]
    fn attributes_an_implementation_omits_do_not_drift_but_are_compared_when_present() {
        let want = attrs(json!({"deployment_circuit_breaker": {"enable": true, "rollback": true}}));
        let absent = observed(Kind::EcsService, Attrs::new());
        assert!(compare(Kind::EcsService, &want, None, &absent).is_empty());
        let off = observed(
            Kind::EcsService,
            attrs(json!({"deployment_circuit_breaker": {"enable": false, "rollback": false}})),
        );
        assert_eq!(compare(Kind::EcsService, &want, None, &off).len(), 1);
    }

    #[test]
    fn secret_values_are_compared_but_never_carried() {
        let mut have = observed(Kind::Secret, Attrs::new());
        have.sensitive = Some(SecretValue::new("old".into()));
        let new = SecretValue::new("new".into());
        let d = compare(Kind::Secret, &Attrs::new(), Some(&new), &have);
        assert_eq!(d.len(), 1);
        assert!(d[0].sensitive && d[0].before.is_none() && d[0].after.is_none());
        have.sensitive = Some(new.clone());
        assert!(compare(Kind::Secret, &Attrs::new(), Some(&new), &have).is_empty());
    }
}
