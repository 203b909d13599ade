//! The Secrets Manager secret holding the Prefect credential. Its value is the resource's one
//! sensitive value (`Desired::sensitive`), never an attribute.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const DESCRIPTION: &str = "description";
/// In its recovery window after a delete: applying restores it.
pub const SCHEDULED_FOR_DELETION: &str = "scheduled_for_deletion";
/// The customer managed KMS key's ARN (`[secret] kms_key_id`), or null for Secrets Manager's
/// own `aws/secretsmanager` key.
pub const KMS_KEY_ID: &str = "kms_key_id";

pub const DEF: KindDef = KindDef {
    name: "secret",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(DESCRIPTION),
        AttrDef::new(SCHEDULED_FOR_DELETION),
        AttrDef::new(KMS_KEY_ID),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
