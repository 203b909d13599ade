//! What the IAM kinds (`kinds/iam_role.rs`, `kinds/iam_role_policy.rs`) share: policy
//! documents as IAM takes and answers them, tags as IAM takes them.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use crate::model::Attrs;

/// A policy document attribute as the JSON text IAM takes.
pub(super) fn document(attrs: &Attrs, key: &str) -> String {
    attrs.get(key).map(Value::to_string).unwrap_or_default()
}

/// IAM answers documents URL-encoded.
pub(super) fn decode_policy(s: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded.into_owned()))
}

pub(super) fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}
