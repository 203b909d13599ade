//! A role's inline policy. IAM gives it no tags: it is the stack's when its role is, and it
//! is read with its role (`iam_role.rs`). PutRolePolicy replaces the whole document: sent
//! again, it does the same.

use super::super::iam::document;
use super::super::{Aws, Found, already, attr, aws_err};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::iam_role_policy::{DOCUMENT, NAME, ROLE};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct IamRolePolicy;

async fn put(aws: &Aws, attrs: &Attrs) -> Result<(), ProviderError> {
    aws.iam
        .put_role_policy()
        .role_name(attr(attrs, ROLE)?)
        .policy_name(attr(attrs, NAME)?)
        .policy_document(document(attrs, DOCUMENT))
        .send()
        .await
        .map_err(|e| aws_err("PutRolePolicy", e))?;
    Ok(())
}

impl Resource for IamRolePolicy {
    async fn discover(&self, _: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        // Read with its role, whose ownership it shares: `IamRole::discover`.
        Ok(Found::default())
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        put(aws, c.attrs).await?;
        Ok(Outputs::new())
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        put(aws, u.attrs).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        aws.iam
            .delete_role_policy()
            .role_name(attr(&o.attrs, ROLE)?)
            .policy_name(attr(&o.attrs, NAME)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("DeleteRolePolicy", e))
            .or_else(already(&["NoSuchEntity"]))?;
        Ok(())
    }
}
