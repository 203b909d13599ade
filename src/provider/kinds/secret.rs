//! The Secrets Manager secret holding the Prefect credential: found by name, owned only when
//! tagged. Its value is compared (never shown) and written only here. CreateSecret's
//! `ClientRequestToken` is filled and kept across retries by the SDK.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::{
    Aws, Found, already, attr, aws_err, changed, observed, retry_when, tag_delta, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::secret::{DESCRIPTION, KMS_KEY_ID, NAME, SCHEDULED_FOR_DELETION};
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::secret::SecretValue;
use crate::spec::Spec;

pub(super) struct Secret;

fn secret_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_secretsmanager::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect()
}

async fn discover_secret(aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
    let mut found = Found::default();
    if let Some(arn) = &spec.secret.arn {
        // Not the stack's: only that it is there, never its value.
        match aws.secrets.describe_secret().secret_id(arn).send().await {
            Ok(d) if d.deleted_date().is_none() => {}
            Ok(_) => found.missing.push(format!(
                "[secret] arn {arn} is scheduled for deletion: restore it (aws secretsmanager \
                 restore-secret) or name another"
            )),
            Err(e) => {
                let e = aws_err("DescribeSecret", e);
                if !e.is(&["ResourceNotFoundException"]) {
                    return Err(e.into());
                }
                found.missing.push(format!(
                    "[secret] arn {arn}: no such secret in Secrets Manager; check the ARN and \
                     the region"
                ));
            }
        }
        return Ok(found);
    }
    let name = &spec.secret.name;
    let d = match aws.secrets.describe_secret().secret_id(name).send().await {
        Ok(d) => d,
        Err(e) => {
            let e = aws_err("DescribeSecret", e);
            return if e.is(&["ResourceNotFoundException"]) {
                Ok(found)
            } else {
                Err(e.into())
            };
        }
    };
    let tags: BTreeMap<String, String> = d
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let address = Address::new(Kind::Secret, "api_key");
    if !found.named(aws, address.clone(), format!("secret {name}"), &tags) {
        return Ok(found);
    }
    let arn = d.arn().unwrap_or_default().to_string();
    let scheduled = d.deleted_date().is_some();
    let attrs = Attrs::from([
        (NAME.into(), json!(d.name())),
        (DESCRIPTION.into(), json!(d.description())),
        (SCHEDULED_FOR_DELETION.into(), json!(scheduled)),
        (KMS_KEY_ID.into(), json!(d.kms_key_id())),
        (TAGS.into(), tags_value(&tags)),
    ]);
    let mut o = observed(
        address,
        &arn,
        &[("arn", &arn), ("name", name)],
        attrs,
        vec![],
    );
    o.deleting = scheduled;
    // A secret scheduled for deletion cannot be read; its value is compared after restore.
    if !scheduled {
        match aws.secrets.get_secret_value().secret_id(&arn).send().await {
            Ok(v) => o.sensitive = v.secret_string().map(|s| SecretValue::new(s.to_string())),
            Err(e) => {
                let e = aws_err("GetSecretValue", e);
                if !e.is(&["ResourceNotFoundException"]) {
                    return Err(e.into());
                }
            }
        }
    }
    found.resources.push(o);
    Ok(found)
}

async fn create_secret(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
    value: Option<&SecretValue>,
) -> Result<Outputs, ProviderError> {
    let value = value.ok_or_else(|| {
        ProviderError("secret value is not available (is the API key set?)".into())
    })?;
    let name = attr(attrs, NAME)?;
    // A force-deleted name is released asynchronously: creating it again fails for a while.
    let out = retry_when(
        aws.settings.deadline,
        |e| e.is(&["InvalidRequestException"]) && e.message.contains("scheduled for deletion"),
        &format!("create secret {name}"),
        || async {
            aws.secrets
                .create_secret()
                .name(name)
                .description(attr(attrs, DESCRIPTION).unwrap_or_default())
                .set_kms_key_id(attrs.get(KMS_KEY_ID).and_then(Value::as_str).map(String::from))
                .secret_string(value.expose())
                .set_tags(Some(secret_tags(tags)))
                .send()
                .await
                .map_err(|e| aws_err("CreateSecret", e))
        },
    )
    .await?;
    let arn = out.arn().unwrap_or_default().to_string();
    Ok(Outputs::from([
        ("id".into(), arn.clone()),
        ("arn".into(), arn),
        (NAME.into(), name.into()),
    ]))
}

async fn update_secret(aws: &Aws, attrs: &Attrs,
    value: Option<&SecretValue>,
    o: &Observed,
) -> Result<(), ProviderError> {
    if o.attrs.get(SCHEDULED_FOR_DELETION) == Some(&json!(true)) {
        aws.secrets
            .restore_secret()
            .secret_id(&o.id)
            .send()
            .await
            .map_err(|e| aws_err("RestoreSecret", e))?;
    }
    let key = changed(attrs, o, KMS_KEY_ID).then(|| {
        // Back to Secrets Manager's own key: its alias, as UpdateSecret takes it.
        attrs
            .get(KMS_KEY_ID)
            .and_then(Value::as_str)
            .unwrap_or("alias/aws/secretsmanager")
            .to_owned()
    });
    if changed(attrs, o, DESCRIPTION) || key.is_some() {
        // A new key encrypts the versions written from now on: the value is put again below.
        aws.secrets
            .update_secret()
            .secret_id(&o.id)
            .description(attr(attrs, DESCRIPTION)?)
            .set_kms_key_id(key.clone())
            .send()
            .await
            .map_err(|e| aws_err("UpdateSecret", e))?;
    }
    if let Some(v) = value
        && (o.sensitive.as_ref() != Some(v) || key.is_some())
    {
        aws.secrets
            .put_secret_value()
            .secret_id(&o.id)
            .secret_string(v.expose())
            .send()
            .await
            .map_err(|e| aws_err("PutSecretValue", e))?;
    }
    let (set, remove) = tag_delta(attrs, o);
    if !set.is_empty() {
        aws.secrets
            .tag_resource()
            .secret_id(&o.id)
            .set_tags(Some(secret_tags(&set)))
            .send()
            .await
            .map_err(|e| aws_err("TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.secrets
            .untag_resource()
            .secret_id(&o.id)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| aws_err("UntagResource", e))?;
    }
    Ok(())
}

async fn delete_secret(aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
    let mut req = aws.secrets.delete_secret().secret_id(&o.id);
    req = match aws.settings.recovery_window_days {
        Some(days) if o.attrs.get(SCHEDULED_FOR_DELETION) != Some(&json!(true)) => {
            req.recovery_window_in_days(days.into())
        }
        Some(_) => return Ok(()),
        None => req.force_delete_without_recovery(true),
    };
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("DeleteSecret", e))
        .or_else(already(&["ResourceNotFoundException"]))?;
    Ok(())
}

impl Resource for Secret {
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        discover_secret(aws, spec).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        create_secret(aws, c.attrs, c.tags, c.sensitive).await
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        update_secret(aws, u.attrs, u.sensitive, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_secret(aws, o).await
    }
}
