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

/// Whether a worker's image fits the prefect-aws the pool's template is made for, as far as
/// its tag and the worker's `EXTRA_PIP_PACKAGES` tell (issue 11, item 4). A too-old Prefect
/// with a prefect-aws the user pinned passes `validate` but fails here: older prefect-aws
/// ignores the template's secret-ARN variables and would put the key in RunTask's environment.
pub fn image_fits_template(
    image: &str,
    extra_pip_packages: Option<&str>,
) -> Result<String, String> {
    use crate::graph::{PREFECT_AWS, PREFECT_AWS_NEEDS, prefect_too_old};
    let parsed =
        crate::image::ImageRef::parse(image).map_err(|e| format!("{e}; fix [[worker]] image"))?;
    let (major, minor) = PREFECT_AWS_NEEDS;
    let pinned = extra_pip_packages.and_then(crate::graph::pinned_prefect_aws);
    if let Some(version) = prefect_too_old(image) {
        return Err(format!(
            "{image} is Prefect {version}{}: the work pool's template is made for {PREFECT_AWS} \
             (Prefect {major}.{minor} or later), and an older prefect-aws ignores its \
             prefect_api_key_secret_arn, so flow runs would get the API key in RunTask's \
             environment; use a Prefect {major}.{minor}+ image such as prefecthq/prefect:3-latest",
            pinned.map(|p| format!(" with {p}")).unwrap_or_default()
        ));
    }
    let prefect_aws = pinned.unwrap_or(PREFECT_AWS);
    Ok(match parsed.prefect_version() {
        Some((v, Some(m))) => format!("{image}: Prefect {v}.{m} with {prefect_aws}"),
        Some((v, None)) => format!("{image}: Prefect {v} (its latest) with {prefect_aws}"),
        None if parsed.is_plain_prefect() => format!(
            "{image}: the tag names no Prefect version (latest is Prefect {major} today) with \
             {prefect_aws}"
        ),
        None => format!(
            "{image}: not a plain Prefect image, so it must bring Prefect {major}.{minor} or \
             later and prefect-aws itself ({PREFECT_AWS} is what the pool's template is made for)"
        ),
    })
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

/// With a customer key on the secret: the execution role may `kms:Decrypt` with that key
/// through Secrets Manager of the key's region, and not otherwise. What is wrong, if anything.
fn kms_decrypt(graph: &StackGraph, secret: &Address) -> Option<String> {
    let key = graph
        .get(secret)?
        .attrs
        .get(crate::kinds::secret::KMS_KEY_ID)?
        .as_str()?;
    let region = key.split(':').nth(3).unwrap_or_default();
    let document = graph
        .get(&Address::new(Kind::IamRolePolicy, "execution"))
        .and_then(|d| d.attrs.get(crate::kinds::iam_role_policy::DOCUMENT))?;
    let decrypt = crate::policy::Request::new("kms:Decrypt", key);
    let via = decrypt.clone().with(
        "kms:ViaService",
        &format!("secretsmanager.{region}.amazonaws.com"),
    );
    if !crate::policy::allows(document, &via) {
        Some(format!(
            "execution role: kms:Decrypt on {key} through Secrets Manager"
        ))
    } else if crate::policy::allows(document, &decrypt) {
        Some(format!(
            "execution role: kms:Decrypt on {key} is not limited to Secrets Manager (kms:ViaService)"
        ))
    } else {
        None
    }
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
        if let Some(problem) = kms_decrypt(graph, &secret) {
            missing.push(problem);
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
    #[test]
    fn an_image_fits_the_template_when_its_prefect_is_new_enough() {
        use super::image_fits_template as fits;
        let ok = fits("prefecthq/prefect:3-latest", None).unwrap();
        assert!(
            ok.contains("Prefect 3 (its latest) with prefect-aws==0.7.12"),
            "{ok}"
        );
        let ok = fits("prefecthq/prefect:3.8.2-python3.12", None).unwrap();
        assert!(ok.contains("Prefect 3.8 with prefect-aws==0.7.12"), "{ok}");
        let ok = fits("prefecthq/prefect:latest", None).unwrap();
        assert!(ok.contains("names no Prefect version"), "{ok}");
        let ok = fits("acme/flows:1.2", Some("pandas")).unwrap();
        assert!(
            ok.contains("must bring Prefect 3.8 or later and prefect-aws"),
            "{ok}"
        );
        // Pinned by the user: validate lets it through, verify says what it costs.
        let err = fits(
            "prefecthq/prefect:2-latest",
            Some("prefect-aws==0.4.19 s3fs"),
        )
        .unwrap_err();
        assert!(err.contains("Prefect 2 with prefect-aws==0.4.19"), "{err}");
        assert!(err.contains("API key in RunTask's environment"), "{err}");
        let err = fits("prefecthq/prefect:3.1.4-python3.12", None).unwrap_err();
        assert!(err.contains("is Prefect 3.1:"), "{err}");
        let err = fits("PrefectHQ/prefect:3", None).unwrap_err();
        assert!(err.contains("fix [[worker]] image"), "{err}");
    }

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
