//! The Prefect side: work pools through Prefect's REST API (Prefect Cloud and a self-hosted
//! server speak the same API under different base URLs), and the workers' heartbeats.
//!
//! A pool has no tags, so ownership lives in its description: a last line
//! `prefect-ecs-tags: {...}` holding the same ownership tags every AWS resource carries.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Found, note, observed};
use crate::apply::ProviderError;
use crate::kinds::work_pool;
use crate::model::{Address, Attrs, Kind, Observed, Outputs, TAG_ADOPTED, TAG_STACK};
use crate::secret::SecretValue;
use crate::spec::{CredentialKind, Spec};

const TAGS_LINE: &str = "prefect-ecs-tags: ";
/// Prefect's answers for a page of pools.
const PAGE: usize = 200;

/// A client of one Prefect API (a Cloud workspace or a server).
pub struct PrefectApi {
    http: reqwest::Client,
    /// Ends in `/api` (or `/api/accounts/…/workspaces/…`), no trailing slash.
    base: String,
    auth: Option<(CredentialKind, SecretValue)>,
    cloud: bool,
    /// Pools this run created ahead of the AWS resources (`reserve_pools`), with their outputs:
    /// their own step then only fills in the template.
    reserved: std::sync::Mutex<BTreeMap<String, Outputs>>,
    /// Pool writes one at a time: a self-hosted server on SQLite answers concurrent writes
    /// with 503 (database locked), and a stack has only a few pools.
    writes: tokio::sync::Semaphore,
}

pub use crate::online::WorkerStatus;

/// A pool as Prefect reports it, for `status`.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub paused: bool,
}

impl PrefectApi {
    pub fn new(
        api_url: &str,
        auth: Option<(CredentialKind, SecretValue)>,
        cloud: bool,
    ) -> Result<PrefectApi, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("prefect-ecs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError(format!("cannot build the Prefect HTTP client: {e}")))?;
        Ok(PrefectApi {
            http,
            base: api_url.trim_end_matches('/').to_owned(),
            auth,
            cloud,
            reserved: Default::default(),
            writes: tokio::sync::Semaphore::new(1),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One call, retried on throttling, 5xx and connection errors. `Ok` carries the status
    /// and the JSON body (`Null` when empty) of any answer below 500 except 429.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        let url = format!("{}{path}", self.base);
        let idempotent = method != Method::POST || path.ends_with("/filter");
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), &url);
            req = match &self.auth {
                Some((CredentialKind::ApiKey, key)) => req.bearer_auth(key.expose()),
                Some((CredentialKind::AuthString, auth)) => {
                    let (user, pass) = auth.expose().split_once(':').unwrap_or((auth.expose(), ""));
                    req.basic_auth(user, Some(pass))
                }
                None => req,
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            let retry_in = Duration::from_millis(250 * 2u64.pow(attempt.min(5)));
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                        && attempt < 6
                    {
                        note(&format!("Prefect answered {status}; retrying"));
                        tokio::time::sleep(retry_after.unwrap_or(retry_in)).await;
                        continue;
                    }
                    let value = serde_json::from_str(&text).unwrap_or(if text.is_empty() {
                        Value::Null
                    } else {
                        Value::String(text)
                    });
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        return Err(ProviderError(format!(
                            "Prefect at {} answered {status} to {method} {path}: {}",
                            self.base,
                            detail(&value)
                        )));
                    }
                    return Ok((status, value));
                }
                // A connection the server reset while the request went out (a busy server
                // dropping a kept-alive one): sent again when doing so twice is harmless, a
                // read or a write of the whole pool, never a create.
                Err(e)
                    if attempt < 4
                        && (e.is_connect() || e.is_timeout() || (idempotent && e.is_request())) =>
                {
                    tokio::time::sleep(retry_in).await;
                }
                Err(e) => {
                    // reqwest's message names the URL, never the headers that carry the key.
                    return Err(ProviderError(format!(
                        "cannot reach Prefect at {}: {}",
                        self.base,
                        error_chain(&e)
                    )));
                }
            }
        }
    }

    /// A call whose only acceptable answers are `ok`; anything else becomes an error that
    /// says what it most likely means.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[StatusCode],
    ) -> Result<(StatusCode, Value), ProviderError> {
        let _write = match method {
            Method::GET => None,
            Method::POST if path.ends_with("/filter") => None,
            _ => Some(self.writes.acquire().await.expect("never closed")),
        };
        let (status, value) = self.call(method.clone(), path, body).await?;
        if ok.contains(&status) {
            return Ok((status, value));
        }
        Err(ProviderError(self.explain(status, &method, path, &value)))
    }

    fn explain(&self, status: StatusCode, method: &Method, path: &str, body: &Value) -> String {
        let what = format!(
            "Prefect at {} answered {status} to {method} {path}",
            self.base
        );
        let detail = detail(body);
        match status {
            StatusCode::UNAUTHORIZED => format!(
                "{what}: {detail}. The {} is wrong, expired, or not for this {}",
                match &self.auth {
                    Some((k, _)) => k.describe(),
                    None => "server needs credentials and none was given: the",
                },
                if self.cloud { "workspace" } else { "server" }
            ),
            StatusCode::FORBIDDEN if is_tier_refusal(&detail) => format!(
                "{what}: {detail}. Prefect refused an `ecs` work pool: this Prefect Cloud plan \
                 does not include hybrid work pools (the free tier allows only Prefect-managed \
                 pools). Upgrade the plan, or point the workers at an existing pool with \
                 [[work_pool]] adopt = true"
            ),
            StatusCode::FORBIDDEN => format!(
                "{what}: {detail}. The credential may not manage work pools (a read-only role?)"
            ),
            StatusCode::NOT_FOUND if !path.starts_with("/work_pools/") => format!(
                "{what}: {detail}. Is api_url the API of a Prefect server or workspace (it ends in /api)?"
            ),
            _ => format!("{what}: {detail}"),
        }
    }

    /// Is the API there, and does it accept the credential?
    pub async fn check_access(&self) -> Result<(), ProviderError> {
        self.expect(
            Method::POST,
            "/work_pools/filter",
            Some(&json!({"limit": 1})),
            &[StatusCode::OK],
        )
        .await
        .map(|_| ())
    }

    /// The server's own default base job template for `ecs` pools, as it serves it for the
    /// known worker types (prefect-aws's), so pools follow the server's Prefect version.
    pub async fn ecs_template(&self) -> Result<Value, ProviderError> {
        let (_, body) = self
            .expect(
                Method::GET,
                "/collections/views/aggregate-worker-metadata",
                None,
                &[StatusCode::OK],
            )
            .await?;
        body.pointer("/prefect-aws/ecs/default_base_job_configuration")
            .filter(|t| t.pointer("/variables/properties").is_some())
            .cloned()
            .ok_or_else(|| {
                ProviderError(format!(
                    "Prefect at {} serves no default template for `ecs` work pools \
                     (prefect-aws/ecs in /collections/views/aggregate-worker-metadata)",
                    self.base
                ))
            })
    }

    async fn all_pools(&self) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        loop {
            let (_, body) = self
                .expect(
                    Method::POST,
                    "/work_pools/filter",
                    Some(&json!({"limit": PAGE, "offset": out.len()})),
                    &[StatusCode::OK],
                )
                .await?;
            let page = body.as_array().cloned().unwrap_or_default();
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// This stack's pools, and same-named pools that are not its own (conflicts, unless the
    /// spec adopts them).
    pub(super) async fn discover(&self, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        for pool in self.all_pools().await? {
            let name = pool["name"].as_str().unwrap_or_default().to_owned();
            let mut tags = pool_tags(&pool);
            let wanted = spec.work_pools.iter().find(|p| p.name == name);
            let ours = tags.get(TAG_STACK) == Some(&spec.name);
            let address = Address::new(Kind::WorkPool, &name);
            let kind = pool["type"].as_str().unwrap_or_default();
            if ours {
                // This stack's, whether the spec still names it or not (then it is deleted).
            } else if wanted.is_some_and(|p| p.adopt)
                && !tags.contains_key(TAG_STACK)
                && kind != "ecs"
            {
                // Its type cannot change, and replacing it would delete a pool prefect-ecs
                // did not create.
                found.conflicts.push(crate::model::Conflict {
                    address,
                    description: format!(
                        "Prefect work pool \"{name}\" is of type {kind}, not ecs, and a pool's \
                         type cannot change: adopt an ecs pool, or name another work_pool"
                    ),
                });
                continue;
            } else if wanted.is_some_and(|p| p.adopt) && !tags.contains_key(TAG_STACK) {
                // Adopted: managed from now on (its description gets our tags at the next
                // apply), and never deleted, even by a destroy before that apply.
                tags.insert(TAG_ADOPTED.to_owned(), "true".to_owned());
            } else if wanted.is_some() {
                let owner = match tags.get(TAG_STACK) {
                    Some(other) => format!("is managed by prefect-ecs stack \"{other}\""),
                    None => "was not created by prefect-ecs; to manage it, add [[work_pool]] \
                             name = \"…\", adopt = true"
                        .to_owned(),
                };
                found.conflicts.push(crate::model::Conflict {
                    address,
                    description: format!("Prefect work pool \"{name}\" exists and {owner}"),
                });
                continue;
            } else {
                continue;
            }
            found.resources.push(pool_observed(address, &pool, tags));
        }
        Ok(found)
    }

    pub(super) async fn create_pool(&self, attrs: &Attrs) -> Result<Outputs, ProviderError> {
        let name = super::attr(attrs, work_pool::NAME)?;
        let reserved = self
            .reserved
            .lock()
            .expect("reserved pools")
            .get(name)
            .cloned();
        if let Some(outputs) = reserved {
            self.update_pool(attrs).await?;
            return Ok(outputs);
        }
        let body = json!({
            "name": name,
            "type": super::attr(attrs, work_pool::TYPE)?,
            "description": full_description(attrs),
            "base_job_template": template_of(attrs)?,
        });
        let (status, pool) = self
            .expect(
                Method::POST,
                "/work_pools/",
                Some(&body),
                &[StatusCode::CREATED, StatusCode::OK, StatusCode::CONFLICT],
            )
            .await?;
        if status != StatusCode::CONFLICT {
            return Ok(pool_outputs(&pool));
        }
        // Already there: a create of ours that answered too late, or a crash after it. Take it
        // over only if it carries this stack's tags.
        let existing = self.read_pool(name).await?.ok_or_else(|| {
            ProviderError(format!(
                "Prefect work pool \"{name}\": 409 on create, then not found"
            ))
        })?;
        let want = crate::provider::tags_in(attrs);
        if pool_tags(&existing).get(TAG_STACK) != want.get(TAG_STACK) {
            return Err(ProviderError(format!(
                "Prefect work pool \"{name}\" was created by someone else meanwhile; prefect-ecs leaves it alone"
            )));
        }
        self.update_pool(attrs).await?;
        Ok(pool_outputs(&existing))
    }

    /// Create the pools a plan creates before anything else, with the server's default
    /// template: a refusal from Prefect (plan tier, credential, name) then stops apply before
    /// any AWS resource exists. Each pool's own step fills in the template later.
    pub async fn reserve_pools(
        &self,
        plan: &crate::plan::Plan,
        template: &Value,
    ) -> Result<(), ProviderError> {
        for c in &plan.changes {
            if c.address.kind == Kind::WorkPool && c.action == crate::plan::Action::Create {
                let mut attrs = c.planned.clone();
                attrs.insert(work_pool::BASE_JOB_TEMPLATE.into(), template.clone());
                let outputs = self.create_pool(&attrs).await.map_err(|e| {
                    ProviderError(format!("{}: {e}; nothing was changed in AWS", c.address))
                })?;
                let name = super::attr(&attrs, work_pool::NAME)?.to_owned();
                self.reserved
                    .lock()
                    .expect("reserved pools")
                    .insert(name, outputs);
            }
        }
        Ok(())
    }

    pub(super) async fn update_pool(&self, attrs: &Attrs) -> Result<(), ProviderError> {
        let name = super::attr(attrs, work_pool::NAME)?;
        let body = json!({
            "description": full_description(attrs),
            "base_job_template": template_of(attrs)?,
        });
        self.expect(
            Method::PATCH,
            &format!("/work_pools/{}", encode(name)),
            Some(&body),
            &[StatusCode::NO_CONTENT, StatusCode::OK],
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn delete_pool(&self, o: &Observed) -> Result<(), ProviderError> {
        let name = o
            .attrs
            .get(work_pool::NAME)
            .and_then(Value::as_str)
            .unwrap_or(&o.id);
        self.expect(
            Method::DELETE,
            &format!("/work_pools/{}", encode(name)),
            None,
            &[
                StatusCode::NO_CONTENT,
                StatusCode::OK,
                StatusCode::NOT_FOUND,
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn read_pool(&self, name: &str) -> Result<Option<Value>, ProviderError> {
        let (status, body) = self
            .expect(
                Method::GET,
                &format!("/work_pools/{}", encode(name)),
                None,
                &[StatusCode::OK, StatusCode::NOT_FOUND],
            )
            .await?;
        Ok((status == StatusCode::OK).then_some(body))
    }

    pub async fn pool_status(&self, name: &str) -> Result<Option<PoolStatus>, ProviderError> {
        Ok(self.read_pool(name).await?.map(|p| PoolStatus {
            name: name.to_owned(),
            kind: p["type"].as_str().unwrap_or_default().to_owned(),
            status: p["status"].as_str().unwrap_or("unknown").to_owned(),
            paused: p["is_paused"].as_bool().unwrap_or(false),
        }))
    }

    /// The pool's workers, newest heartbeat first. `Ok(None)` when the pool does not exist.
    pub async fn workers(&self, pool: &str) -> Result<Option<Vec<WorkerStatus>>, ProviderError> {
        let (status, body) = self
            .expect(
                Method::POST,
                &format!("/work_pools/{}/workers/filter", encode(pool)),
                Some(&json!({})),
                &[StatusCode::OK, StatusCode::NOT_FOUND],
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(
            body.as_array()
                .into_iter()
                .flatten()
                .map(|w| WorkerStatus {
                    name: w["name"].as_str().unwrap_or_default().to_owned(),
                    status: w["status"].as_str().unwrap_or("UNKNOWN").to_owned(),
                    last_heartbeat: w["last_heartbeat_time"].as_str().map(str::to_owned),
                })
                .collect(),
        ))
    }
}

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Prefect's error detail: `{"detail": "..."}` or the body as it came.
fn detail(body: &Value) -> String {
    match body {
        Value::Null => "(no detail)".to_owned(),
        Value::String(s) => s.chars().take(300).collect(),
        v => match v.get("detail") {
            Some(Value::String(s)) => s.clone(),
            Some(d) => d.to_string(),
            None => v.to_string().chars().take(300).collect(),
        },
    }
}

/// Every cause's text, outermost first, for matching and for the one-line reasons.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Prefect Cloud's refusal of a pool type the plan does not include.
pub fn is_tier_refusal(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "plan",
        "tier",
        "upgrade",
        "hybrid",
        "not available",
        "subscription",
    ]
    .iter()
    .any(|w| d.contains(w))
}

fn template_of(attrs: &Attrs) -> Result<&Value, ProviderError> {
    attrs
        .get("base_job_template")
        .filter(|t| t.is_object())
        .ok_or_else(|| ProviderError("attribute base_job_template is missing".into()))
}

/// The description as stored: the human text, then the tags line.
fn full_description(attrs: &Attrs) -> String {
    let text = attrs
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tags = crate::provider::tags_in(attrs);
    format!(
        "{text}\n\n{TAGS_LINE}{}",
        serde_json::to_string(&tags).expect("tags serialize")
    )
}

/// The tags in a pool's description (empty for a pool prefect-ecs never wrote).
pub fn pool_tags(pool: &Value) -> BTreeMap<String, String> {
    pool["description"]
        .as_str()
        .and_then(|d| d.lines().rev().find_map(|l| l.strip_prefix(TAGS_LINE)))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

fn pool_outputs(pool: &Value) -> Outputs {
    let name = pool["name"].as_str().unwrap_or_default();
    Outputs::from([
        (
            "id".to_owned(),
            pool["id"].as_str().unwrap_or(name).to_owned(),
        ),
        ("name".to_owned(), name.to_owned()),
    ])
}

fn pool_observed(address: Address, pool: &Value, tags: BTreeMap<String, String>) -> Observed {
    let name = pool["name"].as_str().unwrap_or_default();
    let description = pool["description"].as_str().unwrap_or_default();
    let text = match description.rfind(TAGS_LINE) {
        Some(i) => description[..i].trim_end(),
        None => description,
    };
    let attrs = Attrs::from([
        ("name".to_owned(), json!(name)),
        ("type".to_owned(), pool["type"].clone()),
        ("description".to_owned(), json!(text)),
        (
            "base_job_template".to_owned(),
            pool["base_job_template"].clone(),
        ),
        ("tags".to_owned(), json!(tags)),
    ]);
    let id = pool["id"].as_str().unwrap_or(name);
    let mut o = observed(address, id, &[("name", name)], attrs, Vec::new());
    // The pool uses nothing by id that discovery could see: its template holds ARNs, but the
    // stack's own order (pool after cluster, roles, subnets) already deletes it first.
    o.uses.clear();
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10, defect 7: a pool's attributes without `name` or a template panicked on
    /// `attrs["name"]`; now each call fails naming the attribute, before any request.
    #[test]
    fn pool_calls_with_missing_attributes_fail_naming_them() {
        let api = PrefectApi::new("http://127.0.0.1:9/api", None, false).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(api.create_pool(&Attrs::new())).unwrap_err();
        assert!(err.0.contains("attribute name"), "{err}");
        let named: Attrs = [
            ("name".to_owned(), json!("p")),
            ("type".to_owned(), json!("ecs")),
        ]
        .into_iter()
        .collect();
        let err = rt.block_on(api.update_pool(&named)).unwrap_err();
        assert!(err.0.contains("attribute base_job_template"), "{err}");
        let err = rt.block_on(api.create_pool(&named)).unwrap_err();
        assert!(err.0.contains("attribute base_job_template"), "{err}");
    }
}
