//! IAM roles (trust policy, managed attachments, tags) and their inline policies. Roles are
//! found by name and owned only when tagged for this stack.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::{Value, json};

use super::{
    Aws, Found, attr, attr_strings, aws_err, changed, observed, retry_codes, tag_delta, tags_in,
    tags_value,
};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::spec::Spec;

/// A policy document attribute as the JSON text IAM takes.
fn document(attrs: &Attrs, key: &str) -> String {
    attrs.get(key).map(Value::to_string).unwrap_or_default()
}

/// IAM answers documents URL-encoded.
fn decode_policy(s: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded.into_owned()))
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

impl Aws {
    pub(super) async fn discover_iam(&self, spec: &Spec) -> Result<Found, ProviderError> {
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
                .map(|(_, name, _, policy)| self.read_role(name, policy)),
        )
        .await;
        let mut found = Found::default();
        for ((address, name, policy_address, _), read) in roles.into_iter().zip(reads) {
            let Some((role, policy)) = read? else {
                continue;
            };
            let tags = tags_in(&role.attrs);
            if !found.named(self, address.clone(), format!("IAM role {name}"), &tags) {
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

    /// The role and its inline policy `policy`, if the role exists.
    async fn read_role(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<Option<(Observed, Option<Observed>)>, ProviderError> {
        // The name is all three reads need: one round trip, not two.
        let inline = async {
            if policy.is_empty() {
                return Ok(None);
            }
            self.iam
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map(Some)
        };
        let (role, attached, inline) = tokio::join!(
            self.iam.get_role().role_name(name).send(),
            self.iam
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
            ("name".into(), json!(name)),
            (
                "assume_role_policy".into(),
                role.assume_role_policy_document()
                    .map(decode_policy)
                    .unwrap_or(Value::Null),
            ),
            ("managed_policy_arns".into(), json!(managed)),
            ("tags".into(), tags_value(&tags)),
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
                    ("role".into(), json!(name)),
                    ("name".into(), json!(policy)),
                    ("document".into(), decode_policy(p.policy_document())),
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

    pub(super) async fn create_iam(
        &self,
        address: &Address,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        if address.kind == Kind::IamRolePolicy {
            self.put_role_policy(attrs).await?;
            return Ok(Outputs::new());
        }
        let name = attr(attrs, "name")?;
        let created = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(document(attrs, "assume_role_policy"))
            .description("created by prefect-ecs")
            .set_tags(Some(iam_tags(tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreateRole", e));
        // CreateRole has no idempotency token, but a role's name is unique: when the SDK sends
        // it again after a lost answer, AWS says the name is taken. Ours (tagged with this
        // address) is the role the first call made; anyone else's is a conflict.
        let arn = match created {
            Ok(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
            Err(e) if e.is(&["EntityAlreadyExists"]) => {
                let role = self
                    .iam
                    .get_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| aws_err("GetRole", e))?;
                let role = role.role();
                let found = role.map(role_tags).unwrap_or_default();
                if !matches!(self.ownership(&found), super::Ownership::Ours(a) if &a == address) {
                    return Err(e.into());
                }
                role.map(|r| r.arn().to_string()).unwrap_or_default()
            }
            Err(e) => return Err(e.into()),
        };
        for arn in attr_strings(attrs.get("managed_policy_arns")) {
            self.iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| aws_err("AttachRolePolicy", e))?;
        }
        Ok(Outputs::from([
            ("id".into(), name.into()),
            ("name".into(), name.into()),
            ("arn".into(), arn),
        ]))
    }

    async fn put_role_policy(&self, attrs: &Attrs) -> Result<(), ProviderError> {
        self.iam
            .put_role_policy()
            .role_name(attr(attrs, "role")?)
            .policy_name(attr(attrs, "name")?)
            .policy_document(document(attrs, "document"))
            .send()
            .await
            .map_err(|e| aws_err("PutRolePolicy", e))?;
        Ok(())
    }

    pub(super) async fn update_iam(
        &self,
        attrs: &Attrs,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        if o.address.kind == Kind::IamRolePolicy {
            return self.put_role_policy(attrs).await;
        }
        let name = o.id.as_str();
        if changed(attrs, o, "assume_role_policy") {
            self.iam
                .update_assume_role_policy()
                .role_name(name)
                .policy_document(document(attrs, "assume_role_policy"))
                .send()
                .await
                .map_err(|e| aws_err("UpdateAssumeRolePolicy", e))?;
        }
        let want = attr_strings(attrs.get("managed_policy_arns"));
        let have = attr_strings(o.attrs.get("managed_policy_arns"));
        for arn in want.iter().filter(|a| !have.contains(a)) {
            self.iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| aws_err("AttachRolePolicy", e))?;
        }
        for arn in have.iter().filter(|a| !want.contains(a)) {
            self.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DetachRolePolicy", e))
                .or_else(super::already(&["NoSuchEntity"]))?;
        }
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.iam
                .tag_role()
                .role_name(name)
                .set_tags(Some(iam_tags(&set)))
                .send()
                .await
                .map_err(|e| aws_err("TagRole", e))?;
        }
        if !remove.is_empty() {
            self.iam
                .untag_role()
                .role_name(name)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagRole", e))?;
        }
        Ok(())
    }

    pub(super) async fn delete_iam(&self, o: &Observed) -> Result<(), ProviderError> {
        if o.address.kind == Kind::IamRolePolicy {
            let r = self
                .iam
                .delete_role_policy()
                .role_name(attr(&o.attrs, "role")?)
                .policy_name(attr(&o.attrs, "name")?)
                .send()
                .await;
            return match r
                .map(|_| ())
                .map_err(|e| aws_err("DeleteRolePolicy", e))
                .or_else(super::already(&["NoSuchEntity"]))
            {
                Err(e) if !e.is(&["NoSuchEntity"]) => Err(e.into()),
                _ => Ok(()),
            };
        }
        let name = o.id.as_str();
        // A role cannot be deleted while policies are attached to it, including ones added by
        // hand: list both kinds, then detach and delete them all at once.
        let (attached, inline) = tokio::join!(
            self.iam
                .list_attached_role_policies()
                .role_name(name)
                .send(),
            self.iam.list_role_policies().role_name(name).send(),
        );
        let attached = attached.map_err(|e| aws_err("ListAttachedRolePolicies", e))?;
        let inline = inline.map_err(|e| aws_err("ListRolePolicies", e))?;
        let detach = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .map(|arn| async move {
                self.iam
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map(|_| ())
                    .map_err(|e| aws_err("DetachRolePolicy", e))
                    .or_else(super::already(&["NoSuchEntity"]))
            });
        let delete = inline.policy_names().iter().map(|p| async move {
            self.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(p)
                .send()
                .await
                .map(|_| ())
                .map(|_| ())
                .map_err(|e| aws_err("DeleteRolePolicy", e))
                .or_else(super::already(&["NoSuchEntity"]))
        });
        let (detached, deleted) = tokio::join!(
            futures::future::try_join_all(detach),
            futures::future::try_join_all(delete),
        );
        detached?;
        deleted?;
        retry_codes(
            self.settings.deadline,
            &["DeleteConflict"],
            &format!("delete IAM role {name}"),
            || async {
                self.iam
                    .delete_role()
                    .role_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteRole", e))
                    .or_else(super::already(&["NoSuchEntity"]))
            },
        )
        .await
    }
}

fn role_tags(role: &aws_sdk_iam::types::Role) -> BTreeMap<String, String> {
    role.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}
