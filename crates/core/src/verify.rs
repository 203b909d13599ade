//! The pure checks of `prefect-ecs verify`: what can be told from the spec and the graph
//! alone. The checks that ask AWS or Prefect live in `commands`, through the provider.

use serde_json::Value;

use crate::graph::StackGraph;
use crate::model::{Address, Kind, as_reference};

/// One check's outcome: its name, and `Err(fix)` when it failed.
pub type Check = (String, Result<String, String>);

/// A container image reference as Docker parses it: `[registry[:port]/]path[:tag][@digest]`.
pub fn image_reference(image: &str) -> Result<(), String> {
    crate::image::ImageRef::parse(image).map(|_| ())
}

fn statements(graph: &StackGraph, address: &Address) -> Vec<(Vec<String>, Vec<Value>)> {
    let Some(d) = graph.get(address) else {
        return Vec::new();
    };
    d.attrs
        .get(crate::kinds::iam_role_policy::DOCUMENT)
        .and_then(|doc| doc.get("Statement"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let actions = s["Action"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            let resources = s["Resource"].as_array().cloned().unwrap_or_default();
            (actions, resources)
        })
        .collect()
}

/// Does the policy prefect-ecs will create grant `action` on what `resources` name?
fn grants(
    statements: &[(Vec<String>, Vec<Value>)],
    action: &str,
    resource: Option<&Address>,
) -> bool {
    statements.iter().any(|(actions, resources)| {
        actions.iter().any(|a| a == action)
            && match resource {
                None => resources.iter().any(|r| r == "*"),
                Some(want) => resources
                    .iter()
                    .any(|r| as_reference(r).is_some_and(|(a, out)| &a == want && out == "arn")),
            }
    })
}

/// The permissions without which the worker cannot run flows, or its task cannot start.
pub fn worker_permissions(graph: &StackGraph) -> Result<String, String> {
    let task = statements(graph, &Address::new(Kind::IamRolePolicy, "task"));
    let mut missing = Vec::new();
    for action in [
        "ecs:RunTask",
        "ecs:RegisterTaskDefinition",
        "ecs:DescribeTasks",
        "ecs:StopTask",
    ] {
        if !grants(&task, action, None) {
            missing.push(format!("worker task role: {action}"));
        }
    }
    let mut pass = vec![Address::new(Kind::IamRole, "execution")];
    if graph
        .get(&Address::new(Kind::IamRole, "flow_run"))
        .is_some()
    {
        pass.push(Address::new(Kind::IamRole, "flow_run"));
    }
    for role in &pass {
        if !grants(&task, "iam:PassRole", Some(role)) {
            missing.push(format!("worker task role: iam:PassRole on {role}"));
        }
    }
    let secret = Address::new(Kind::Secret, "api_key");
    if graph.get(&secret).is_some() {
        let exec = statements(graph, &Address::new(Kind::IamRolePolicy, "execution"));
        if !grants(&exec, "secretsmanager:GetSecretValue", Some(&secret)) {
            missing.push("execution role: secretsmanager:GetSecretValue on the secret".into());
        }
    }
    if missing.is_empty() {
        Ok(format!(
            "ecs:RunTask and friends, iam:PassRole on exactly {}{}",
            pass.iter()
                .map(Address::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            if graph.get(&secret).is_some() {
                "; the execution role reads the secret"
            } else {
                ""
            }
        ))
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10, defect 7: a policy resource without a document panicked on `attrs["document"]`.
    #[test]
    fn a_policy_without_a_document_is_missing_permissions_not_a_panic() {
        let policy = crate::model::Desired::new(
            Address::new(Kind::IamRolePolicy, "task"),
            crate::model::Attrs::new(),
        );
        let graph = StackGraph::from_resources(vec![policy]).unwrap();
        let missing = worker_permissions(&graph).unwrap_err();
        assert!(
            missing.contains("worker task role: ecs:RunTask"),
            "{missing}"
        );
    }

    #[test]
    fn image_references() {
        for ok in [
            "prefecthq/prefect:3-latest",
            "prefecthq/prefect:3-python3.12",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/flows/worker:1.2.3",
            "localhost:5000/worker",
            "ubuntu",
            "prefecthq/prefect@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Prefecthq/prefect:3",
            "prefecthq/prefect:",
            "prefecthq//prefect",
            "a b",
            "x:-tag",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }
}
