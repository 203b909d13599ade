//! AWS on the wire: which operation a request is, what it asks, and errors shaped the way each
//! protocol's SDK parser expects them.

use std::collections::HashMap;

use hyper::HeaderMap;
use serde_json::Value;

/// How a service encodes requests and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's query dialect: `<Response><Errors><Error>`.
    Ec2,
    /// IAM, STS: `<ErrorResponse><Error>`.
    Query,
    /// awsJson 1.0/1.1 (ECS, Cloud Map, Secrets Manager, Logs): `{"__type": ...}`.
    Json,
}

/// One AWS call as the proxy understood it.
#[derive(Debug, Clone)]
pub struct Op {
    /// The signing name from the credential scope: `ec2`, `iam`, `ecs`, `servicediscovery`...
    pub service: String,
    /// The access key id that signed the call: tells apart the runs of one test.
    pub access_key: String,
    pub operation: String,
    /// None for a protocol the proxy cannot answer in (it then only forwards and logs).
    pub protocol: Option<Protocol>,
    pub params: Params,
}

#[derive(Debug, Clone)]
pub enum Params {
    Form(HashMap<String, String>),
    Json(Value),
    Other,
}

/// A Prefect REST call by method and path, pool names left out:
/// `POST /work_pools/{name}/workers/filter`.
pub fn prefect_operation(method: &hyper::Method, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.trim_start_matches("/api").split('/') {
        let name = parts.last() == Some(&"work_pools") && !["", "filter"].contains(&segment);
        parts.push(if name { "{name}" } else { segment });
    }
    format!("{method} {}", parts.join("/"))
}

impl Op {
    pub fn identify(headers: &HeaderMap, body: &[u8]) -> Op {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let service = header("authorization")
            .and_then(credential_service)
            .unwrap_or("unknown")
            .to_owned();
        let access_key = header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .unwrap_or_default()
            .to_owned();
        if let Some(target) = header("x-amz-target") {
            let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
            let params = serde_json::from_slice(body).unwrap_or(Value::Null);
            return Op {
                service,
                access_key,
                operation,
                protocol: Some(Protocol::Json),
                params: Params::Json(params),
            };
        }
        let form = header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if form {
            let params = parse_form(body);
            let operation = params
                .get("Action")
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let protocol = if service == "ec2" {
                Protocol::Ec2
            } else {
                Protocol::Query
            };
            return Op {
                service,
                access_key,
                operation,
                protocol: Some(protocol),
                params: Params::Form(params),
            };
        }
        Op {
            service,
            access_key,
            operation: "unknown".into(),
            protocol: None,
            params: Params::Other,
        }
    }

    /// A request parameter: a form field (`SubnetId`) or a top-level JSON field (`serviceName`).
    pub fn param(&self, name: &str) -> Option<&str> {
        match &self.params {
            Params::Form(f) => f.get(name).map(String::as_str),
            Params::Json(v) => v.get(name).and_then(Value::as_str),
            Params::Other => None,
        }
    }

    /// A list parameter of EC2's query dialect, `Stem.1`, `Stem.2`, … in order.
    pub fn param_list(&self, stem: &str) -> Vec<&str> {
        (1..)
            .map_while(|i| self.param(&format!("{stem}.{i}")))
            .collect()
    }

    /// The value of the `prefect-ecs:address` tag among the call's parameters: EC2's and
    /// IAM's `…Tag.N.Key`/`…Tag.N.Value` form fields, or a JSON `tags` list or map.
    pub fn address_tag(&self) -> Option<String> {
        const KEY: &str = "prefect-ecs:address";
        match &self.params {
            Params::Form(f) => f.iter().find_map(|(k, v)| {
                let stem = k.strip_suffix("Key").filter(|_| v == KEY)?;
                f.get(&format!("{stem}Value")).cloned()
            }),
            Params::Json(v) => find_json_tag(v, KEY),
            Params::Other => None,
        }
    }

    /// The idempotency token a create carries (`ClientToken`, `clientToken`,
    /// `ClientRequestToken`, `CreatorRequestId`).
    pub fn client_token(&self) -> Option<&str> {
        [
            "ClientToken",
            "clientToken",
            "ClientRequestToken",
            "CreatorRequestId",
        ]
        .iter()
        .find_map(|k| self.param(k))
    }

    pub fn json(&self) -> Option<&Value> {
        match &self.params {
            Params::Json(v) => Some(v),
            _ => None,
        }
    }
}

/// `ec2` out of `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request, ...`.
fn credential_service(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let mut parts = scope.rsplit('/');
    (parts.next()? == "aws4_request").then_some(())?;
    parts.next()
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// An AWS error the proxy answers with instead of moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The body and content type of this error in `protocol`.
    pub fn render(&self, protocol: Protocol) -> (Vec<u8>, &'static str) {
        let request_id = "injected-by-test-proxy";
        let message = xml_escape(&self.message);
        let code = self.code;
        match protocol {
            Protocol::Ec2 => (
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
                     <Code>{code}</Code><Message>{message}</Message></Error></Errors>\
                     <RequestID>{request_id}</RequestID></Response>"
                )
                .into_bytes(),
                "text/xml;charset=UTF-8",
            ),
            Protocol::Query => {
                let kind = if self.status >= 500 {
                    "Receiver"
                } else {
                    "Sender"
                };
                (
                    format!(
                        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
                         <Message>{message}</Message></Error>\
                         <RequestId>{request_id}</RequestId></ErrorResponse>"
                    )
                    .into_bytes(),
                    "text/xml",
                )
            }
            Protocol::Json => (
                serde_json::to_vec(&serde_json::json!({
                    "__type": code,
                    "message": self.message,
                }))
                .expect("a JSON object serializes"),
                "application/x-amz-json-1.1",
            ),
        }
    }

    /// The service's own throttling error.
    pub fn throttling(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Ec2 => AwsError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
            Protocol::Query => AwsError::new(400, "Throttling", "Rate exceeded"),
            Protocol::Json => AwsError::new(400, "ThrottlingException", "Rate exceeded"),
        }
    }

    pub fn internal(protocol: Protocol) -> Self {
        let code = match protocol {
            Protocol::Ec2 => "InternalError",
            Protocol::Query | Protocol::Json => "InternalFailure",
        };
        AwsError::new(
            500,
            code,
            "An internal error has occurred (injected by the test proxy).",
        )
    }

    pub fn unavailable(protocol: Protocol) -> Self {
        let code = match protocol {
            Protocol::Ec2 => "Unavailable",
            Protocol::Query => "ServiceUnavailable",
            Protocol::Json => "ServiceUnavailableException",
        };
        AwsError::new(
            503,
            code,
            "The service is unavailable. Please try again shortly (injected by the test proxy).",
        )
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn find_json_tag(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            let k = m.get("key").or(m.get("Key")).and_then(Value::as_str);
            if k == Some(key) {
                return m
                    .get("value")
                    .or(m.get("Value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            if let Some(Value::String(s)) = m.get(key) {
                return Some(s.clone());
            }
            m.values().find_map(|x| find_json_tag(x, key))
        }
        Value::Array(a) => a.iter().find_map(|x| find_json_tag(x, key)),
        _ => None,
    }
}
