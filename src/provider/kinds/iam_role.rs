//! An IAM role: found by name (owned only when tagged for this stack), read together with its
//! managed attachments and the one inline policy prefect-ecs gives it (`iam_role_policy.rs`).
//! CreateRole has no idempotency token, but a role's name is unique: "already exists" is ours
//! only when the role carries this address.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::iam::{decode_policy, document, iam_tags};
use super::super::{
    Aws, Found, Ownership, already, attr, attr_strings, aws_err, changed, observed, retry_codes,
    tag_delta, tags_in, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::iam_role::{
    ASSUME_ROLE_POLICY, MANAGED_POLICY_ARNS, NAME, PATH, PERMISSIONS_BOUNDARY,
};
use crate::kinds::iam_role_policy as policy;
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct IamRole;

pub(in crate::provider) fn role_tags(role: &aws_sdk_iam::types::Role) -> BTreeMap<String, String> {
    role.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The role and its inline policy `policy`, if the role exists.
async fn read_role(aws: &Aws, name: &str,
    policy: &str,
) -> Result<Option<(Observed, Option<Observed>)>, ProviderError> {
    // The name is all three reads need: one round trip, not two.
    let inline = async {
        if policy.is_empty() {
            return Ok(None);
        }
        aws.iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map(Some)
    };
    let (role, attached, inline) = tokio::join!(
        aws.iam.get_role().role_name(name).send(),
        aws.iam
            .list_attached_role_policies()
            .role_name(name)
            .send(),
        inline,
    );
    let role = match role {
        Ok(r) => r,
        Err(e) => {
            let e = aws_err("GetRole", e);
            return if e.is(&["NoSuchEntity"]) {
                Ok(None)
            } else {
                Err(e.into())
            };
        }
    };
    let Some(role) = role.role() else {
        return Ok(None);
    };
    let mut managed: Vec<String> = attached
        .map_err(|e| aws_err("ListAttachedRolePolicies", e))?
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(String::from))
        .collect();
    managed.sort();
    let tags = role_tags(role);
    let attrs = Attrs::from([
        (NAME.into(), json!(name)),
        (
            ASSUME_ROLE_POLICY.into(),
            role.assume_role_policy_document()
                .map(decode_policy)
                .unwrap_or(Value::Null),
        ),
        (MANAGED_POLICY_ARNS.into(), json!(managed)),
        (PATH.into(), json!(role.path())),
        (
            PERMISSIONS_BOUNDARY.into(),
            json!(
                role.permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
            ),
        ),
        (TAGS.into(), tags_value(&tags)),
    ]);
    let r = observed(
        Address::new(Kind::IamRole, name),
        name,
        &[("name", name), ("arn", role.arn())],
        attrs,
        vec![],
    );
    let p = match inline {
        Ok(None) => None,
        Ok(Some(p)) => Some(observed(
            Address::new(Kind::IamRolePolicy, name),
            format!("{name}:{policy}"),
            &[],
            Attrs::from([
                (policy::ROLE.into(), json!(name)),
                (policy::NAME.into(), json!(policy)),
                (policy::DOCUMENT.into(), decode_policy(p.policy_document())),
            ]),
            vec![name.to_string()],
        )),
        Err(e) => {
            let e = aws_err("GetRolePolicy", e);
            if !e.is(&["NoSuchEntity"]) {
                return Err(e.into());
            }
            None
        }
    };
    Ok(Some((r, p)))
}


impl Resource for IamRole {
    /// The stack's roles by their names in the spec, each with its inline policy.
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        // Looked for under its default name when the spec turned it off, so it is deleted.
        let flow_run = spec
            .iam
            .flow_run_role_name
            .clone()
            .unwrap_or_else(|| format!("{}-flow-run-role", spec.name));
        let roles = [
            (
                Address::new(Kind::IamRole, "execution"),
                &spec.iam.execution_role_name,
                Address::new(Kind::IamRolePolicy, "execution"),
                "read-prefect-api-key",
            ),
            (
                Address::new(Kind::IamRole, "task"),
                &spec.iam.task_role_name,
                Address::new(Kind::IamRolePolicy, "task"),
                "prefect-ecs-worker",
            ),
            (
                Address::new(Kind::IamRole, "flow_run"),
                &flow_run,
                // The flow-run role has no inline policy of prefect-ecs.
                Address::new(Kind::IamRolePolicy, "flow_run"),
                "",
            ),
        ];
        let reads = futures::future::join_all(
            roles
                .iter()
                .map(|(_, name, _, policy)| read_role(aws, name, policy)),
        )
        .await;
        let mut found = Found::default();
        for ((address, name, policy_address, _), read) in roles.into_iter().zip(reads) {
            let Some((role, policy)) = read? else {
                continue;
            };
            let tags = tags_in(&role.attrs);
            if !found.named(aws, address.clone(), format!("IAM role {name}"), &tags) {
                continue;
            }
            let mut role = role;
            role.address = address;
            if let Some(mut p) = policy {
                p.address = policy_address;
                found.resources.push(p);
            }
            found.resources.push(role);
        }
        Ok(found)

    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let name = attr(c.attrs, NAME)?;
        let created = aws
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(document(c.attrs, ASSUME_ROLE_POLICY))
            .description("created by prefect-ecs")
            .path(attr(c.attrs, PATH).unwrap_or("/"))
            .set_permissions_boundary(
                c.attrs
                    .get(PERMISSIONS_BOUNDARY)
                    .and_then(Value::as_str)
                    .map(String::from),
            )
            .set_tags(Some(iam_tags(c.tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreateRole", e));
        // CreateRole has no idempotency token, but a role's name is unique: when the SDK sends
        // it again after a lost answer, AWS says the name is taken. Ours (tagged with this
        // address) is the role the first call made; anyone else's is a conflict.
        let arn = match created {
            Ok(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
            Err(e) if e.is(&["EntityAlreadyExists"]) => {
                let role = aws
                    .iam
                    .get_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| aws_err("GetRole", e))?;
                let role = role.role();
                let found = role.map(role_tags).unwrap_or_default();
                if !matches!(aws.ownership(&found), Ownership::Ours(a) if &a == c.address) {
                    return Err(e.into());
                }
                role.map(|r| r.arn().to_string()).unwrap_or_default()
            }
            Err(e) => return Err(e.into()),
        };
        for arn in attr_strings(c.attrs.get(MANAGED_POLICY_ARNS)) {
            aws.iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| aws_err("AttachRolePolicy", e))?;
        }
        Ok(Outputs::from([
            ("id".into(), name.into()),
            (NAME.into(), name.into()),
            ("arn".into(), arn),
        ]))

    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let (attrs, o) = (u.attrs, u.observed);
        let name = o.id.as_str();
        if changed(attrs, o, ASSUME_ROLE_POLICY) {
            aws.iam
                .update_assume_role_policy()
                .role_name(name)
                .policy_document(document(attrs, ASSUME_ROLE_POLICY))
                .send()
                .await
                .map_err(|e| aws_err("UpdateAssumeRolePolicy", e))?;
        }
        if changed(attrs, o, PERMISSIONS_BOUNDARY) {
            match attrs.get(PERMISSIONS_BOUNDARY).and_then(Value::as_str) {
                Some(arn) => aws
                    .iam
                    .put_role_permissions_boundary()
                    .role_name(name)
                    .permissions_boundary(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("PutRolePermissionsBoundary", e))?,
                None => aws
                    .iam
                    .delete_role_permissions_boundary()
                    .role_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteRolePermissionsBoundary", e))
                    .or_else(already(&["NoSuchEntity"]))?,
            }
        }
        let want = attr_strings(attrs.get(MANAGED_POLICY_ARNS));
        let have = attr_strings(o.attrs.get(MANAGED_POLICY_ARNS));
        for arn in want.iter().filter(|a| !have.contains(a)) {
            aws.iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| aws_err("AttachRolePolicy", e))?;
        }
        for arn in have.iter().filter(|a| !want.contains(a)) {
            aws.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DetachRolePolicy", e))
                .or_else(already(&["NoSuchEntity"]))?;
        }
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            aws.iam
                .tag_role()
                .role_name(name)
                .set_tags(Some(iam_tags(&set)))
                .send()
                .await
                .map_err(|e| aws_err("TagRole", e))?;
        }
        if !remove.is_empty() {
            aws.iam
                .untag_role()
                .role_name(name)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagRole", e))?;
        }
        Ok(())

    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let name = o.id.as_str();
        // A role cannot be deleted while policies are attached to it, including ones added by
        // hand: list both kinds, then detach and delete them all at once.
        let (attached, inline) = tokio::join!(
            aws.iam
                .list_attached_role_policies()
                .role_name(name)
                .send(),
            aws.iam.list_role_policies().role_name(name).send(),
        );
        let attached = attached.map_err(|e| aws_err("ListAttachedRolePolicies", e))?;
        let inline = inline.map_err(|e| aws_err("ListRolePolicies", e))?;
        let detach = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .map(|arn| async move {
                aws.iam
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DetachRolePolicy", e))
                    .or_else(already(&["NoSuchEntity"]))
            });
        let delete = inline.policy_names().iter().map(|p| async move {
            aws.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(p)
                .send()
                .await
                .map(|_| ())
                .map(|_| ())
                .map_err(|e| aws_err("DeleteRolePolicy", e))
                .or_else(already(&["NoSuchEntity"]))
        });
        let (detached, deleted) = tokio::join!(
            futures::future::try_join_all(detach),
            futures::future::try_join_all(delete),
        );
        detached?;
        deleted?;
        retry_codes(
            aws.settings.deadline,
            &["DeleteConflict"],
            &format!("delete IAM role {name}"),
            || async {
                aws.iam
                    .delete_role()
                    .role_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteRole", e))
                    .or_else(already(&["NoSuchEntity"]))
            },
        )
        .await

    }
}
