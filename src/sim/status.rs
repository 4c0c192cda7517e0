//! Kubernetes `Status` error objects: every failed request answers with one, as the API server does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// An API error a client sees as a `Status` object with an HTTP code and a reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: most errors have none, and every `Result` of the API server carries the room.
    pub details: Option<Box<Details>>,
}

/// `Status.details`, its fields in the order the API server writes them; empty ones left out (a
/// core-group object's details have no `group`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    #[serde(skip_serializing_if = "blank")]
    pub reason: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

fn blank(s: &&str) -> bool {
    s.is_empty()
}

/// The `Status` object as the API server encodes it: Go's field order, so a client that compares
/// the body as text (the Python client's `create_from_yaml` errors do) sees the same bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, Value>,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    code: u16,
}

impl Details {
    fn of(group: &str, plural: &str, name: &str) -> Self {
        Details {
            name: name.into(),
            group: group.into(),
            kind: plural.into(),
            ..Default::default()
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let resource = qualified(group, plural);
        ApiError::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(Details::of(group, plural, name))
    }

    pub fn path_not_found(path: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let resource = qualified(group, plural);
        ApiError::new(409, "AlreadyExists", format!("{resource} \"{name}\" already exists"))
            .with_details(Details::of(group, plural, name))
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let resource = qualified(group, plural);
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
        .with_details(Details::of(group, plural, name))
    }

    /// Server-side apply found fields owned by other managers with other values.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let n = conflicts.len();
        let mut message = format!("Apply failed with {n} conflict{}: ", if n == 1 { "" } else { "s" });
        let parts: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        message.push_str(&parts.join(", "));
        let causes = conflicts
            .iter()
            .map(|(m, f)| Cause {
                reason: "FieldManagerConflict",
                message: format!("conflict with \"{m}\""),
                field: f.clone(),
            })
            .collect();
        ApiError::new(409, "Conflict", message).with_details(Details {
            causes,
            ..Default::default()
        })
    }

    pub fn invalid(kind: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = format!("{kind} \"{name}\" is invalid: {}", text.join(", "));
        let causes = causes
            .into_iter()
            .map(|(field, message)| Cause {
                reason: "FieldValueInvalid",
                message,
                field,
            })
            .collect();
        ApiError::new(422, "Invalid", message).with_details(Details {
            name: name.into(),
            kind: kind.into(),
            causes,
            ..Default::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// A 500 without a reason, as kube-apiserver answers an apply patch it cannot type.
    pub fn untyped(message: impl Into<String>) -> Self {
        ApiError::new(500, "", message)
    }

    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        ApiError::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        )
        .with_details(Details {
            retry_after_seconds: Some(retry_after_seconds),
            ..Default::default()
        })
    }

    fn with_details(mut self, details: Details) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    fn body(&self) -> StatusBody<'_> {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: Default::default(),
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code,
        }
    }

    /// The `Status` object, as sent in a watch ERROR event.
    pub fn to_status(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// The response body: the encoded `Status` and a newline, byte for byte what the API server
    /// sends.
    fn to_body(&self) -> String {
        let mut text = serde_json::to_string(&self.body()).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_body(),
        )
            .into_response();
        if self.code == 429
            && let Some(secs) = self.details.as_ref().and_then(|d| d.retry_after_seconds)
            && let Ok(value) = secs.to_string().parse()
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

impl ApiError {
    /// A patch that could not be applied to the object (a JSON patch `test` failing, a bad path).
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        ApiError::new(422, "Invalid", message)
    }

    /// A request whose credentials the server does not accept.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// A request an admission policy refused: `RESOURCE "NAME" is forbidden: MESSAGE`, with the
    /// policy's reason and code, and the message again as the one cause (which kubectl prints).
    pub fn admission_denied(
        group: &str,
        plural: &str,
        name: &str,
        reason: &'static str,
        code: u16,
        message: &str,
    ) -> Self {
        let resource = qualified(group, plural);
        ApiError::new(code, reason, format!("{resource} \"{name}\" is forbidden: {message}")).with_details(Details {
            causes: vec![Cause {
                reason: "",
                message: message.into(),
                field: String::new(),
            }],
            ..Details::of(group, plural, name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_what_the_api_server_sends_byte_for_byte() {
        assert_eq!(
            ApiError::already_exists("", "services", "web").to_body(),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"services \"web\" already exists","reason":"AlreadyExists","#,
                r#""details":{"name":"web","kind":"services"},"code":409}"#,
                "\n"
            )
        );
        assert_eq!(
            ApiError::conflict(
                "apps",
                "deployments",
                "web",
                "the object has been modified; please apply your changes to the latest version and try again"
            )
            .to_body(),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again","#,
                r#""reason":"Conflict","details":{"name":"web","group":"apps","kind":"deployments"},"code":409}"#,
                "\n"
            )
        );
        let gone = ApiError::gone("too old resource version: 1 (5)").to_status();
        assert_eq!(gone["code"], 410);
        assert!(gone.get("details").is_none());
    }
}
