//! Protobuf request bodies. kubectl's typed commands (`kubectl create configmap|secret|namespace|serviceaccount`,
//! `kubectl create token`, `kubectl auth can-i|whoami`) send `application/vnd.kubernetes.protobuf`;
//! this decodes those few kinds into JSON. Other kinds get a 415 that says to send JSON, which
//! every other kubectl command and kube-rs do.

use super::status::ApiError;
use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Time,
    Msg(&'static str),
    StrMap,
    /// Bytes values appear base64-encoded in JSON.
    BytesMap,
}

struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
    }
}

const fn list(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: true,
    }
}

fn fields(message: &str) -> Option<&'static [Field]> {
    use Kind::*;
    const OBJECT_META: &[Field] = &[
        f(1, "name", Str),
        f(2, "generateName", Str),
        f(3, "namespace", Str),
        f(5, "uid", Str),
        f(6, "resourceVersion", Str),
        f(7, "generation", Int),
        f(8, "creationTimestamp", Time),
        f(10, "deletionGracePeriodSeconds", Int),
        f(11, "labels", StrMap),
        f(12, "annotations", StrMap),
        list(13, "ownerReferences", Msg("OwnerReference")),
        list(14, "finalizers", Str),
    ];
    const OWNER_REFERENCE: &[Field] = &[
        f(1, "kind", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
        f(5, "apiVersion", Str),
        f(6, "controller", Bool),
        f(7, "blockOwnerDeletion", Bool),
    ];
    const CONFIG_MAP: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "data", StrMap),
        f(3, "binaryData", BytesMap),
        f(4, "immutable", Bool),
    ];
    const SECRET: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "data", BytesMap),
        f(3, "type", Str),
        f(4, "stringData", StrMap),
        f(5, "immutable", Bool),
    ];
    const NAMESPACE: &[Field] = &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("NamespaceSpec"))];
    const NAMESPACE_SPEC: &[Field] = &[list(1, "finalizers", Str)];
    const SERVICE_ACCOUNT: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(4, "automountServiceAccountToken", Bool),
    ];
    const TOKEN_REQUEST: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "spec", Msg("TokenRequestSpec")),
    ];
    const TOKEN_REQUEST_SPEC: &[Field] = &[
        list(1, "audiences", Str),
        f(3, "boundObjectRef", Msg("BoundObjectReference")),
        f(4, "expirationSeconds", Int),
    ];
    const BOUND_OBJECT: &[Field] = &[
        f(1, "kind", Str),
        f(2, "apiVersion", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
    ];
    const TOKEN_REVIEW: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "spec", Msg("TokenReviewSpec")),
    ];
    const TOKEN_REVIEW_SPEC: &[Field] = &[f(1, "token", Str), list(2, "audiences", Str)];
    const SELF_REVIEW: &[Field] = &[f(1, "metadata", Msg("ObjectMeta"))];
    const SSAR: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
    ];
    const SSAR_SPEC: &[Field] = &[
        f(1, "resourceAttributes", Msg("ResourceAttributes")),
        f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
    ];
    const SAR: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "spec", Msg("SubjectAccessReviewSpec")),
    ];
    const SAR_SPEC: &[Field] = &[
        f(1, "resourceAttributes", Msg("ResourceAttributes")),
        f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
        f(3, "user", Str),
        list(4, "groups", Str),
        f(6, "uid", Str),
    ];
    const RESOURCE_ATTRIBUTES: &[Field] = &[
        f(1, "namespace", Str),
        f(2, "verb", Str),
        f(3, "group", Str),
        f(4, "version", Str),
        f(5, "resource", Str),
        f(6, "subresource", Str),
        f(7, "name", Str),
    ];
    const NON_RESOURCE_ATTRIBUTES: &[Field] = &[f(1, "path", Str), f(2, "verb", Str)];
    const SSRR: &[Field] = &[
        f(1, "metadata", Msg("ObjectMeta")),
        f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
    ];
    const SSRR_SPEC: &[Field] = &[f(1, "namespace", Str)];
    Some(match message {
        "ObjectMeta" => OBJECT_META,
        "OwnerReference" => OWNER_REFERENCE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Namespace" => NAMESPACE,
        "NamespaceSpec" => NAMESPACE_SPEC,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "TokenRequest" => TOKEN_REQUEST,
        "TokenRequestSpec" => TOKEN_REQUEST_SPEC,
        "BoundObjectReference" => BOUND_OBJECT,
        "TokenReview" => TOKEN_REVIEW,
        "TokenReviewSpec" => TOKEN_REVIEW_SPEC,
        "SelfSubjectReview" => SELF_REVIEW,
        "SelfSubjectAccessReview" => SSAR,
        "SelfSubjectAccessReviewSpec" => SSAR_SPEC,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => SAR,
        "SubjectAccessReviewSpec" => SAR_SPEC,
        "ResourceAttributes" => RESOURCE_ATTRIBUTES,
        "NonResourceAttributes" => NON_RESOURCE_ATTRIBUTES,
        "SelfSubjectRulesReview" => SSRR,
        "SelfSubjectRulesReviewSpec" => SSRR_SPEC,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed() -> ApiError {
    ApiError::bad_request("the protobuf request body is malformed")
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(malformed)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(malformed())
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(malformed)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next (field number, wire value) pair; fixed-width values are skipped.
    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => Wire::Bytes(self.bytes()?),
            1 => {
                self.pos += 8;
                Wire::Skipped
            }
            5 => {
                self.pos += 4;
                Wire::Skipped
            }
            _ => return Err(malformed()),
        };
        Ok(Some((key >> 3, wire)))
    }
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

fn decode_message(message: &str, buf: &[u8]) -> Result<Value, ApiError> {
    let schema = fields(message).ok_or_else(malformed)?;
    let mut out = Map::new();
    let mut r = Reader { buf, pos: 0 };
    while let Some((number, wire)) = r.next()? {
        let Some(field) = schema.iter().find(|f| f.number == number) else {
            continue;
        };
        let value = match (field.kind, wire) {
            (Kind::Str, Wire::Bytes(b)) => json!(text(b)?),
            (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
            (Kind::Int, Wire::Varint(v)) => json!(v as i64),
            (Kind::Time, Wire::Bytes(b)) => {
                let mut t = Reader { buf: b, pos: 0 };
                let mut seconds = 0i64;
                while let Some((n, w)) = t.next()? {
                    if let (1, Wire::Varint(s)) = (n, w) {
                        seconds = s as i64;
                    }
                }
                let ts = jiff::Timestamp::from_second(seconds).map_err(|_| malformed())?;
                json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
            (Kind::Msg(name), Wire::Bytes(b)) => decode_message(name, b)?,
            (Kind::StrMap | Kind::BytesMap, Wire::Bytes(b)) => {
                let mut e = Reader { buf: b, pos: 0 };
                let (mut k, mut v) = (String::new(), Value::Null);
                while let Some((n, w)) = e.next()? {
                    match (n, w) {
                        (1, Wire::Bytes(x)) => k = text(x)?,
                        (2, Wire::Bytes(x)) if matches!(field.kind, Kind::StrMap) => v = json!(text(x)?),
                        (2, Wire::Bytes(x)) => v = json!(base64::engine::general_purpose::STANDARD.encode(x)),
                        _ => {}
                    }
                }
                let map = out.entry(field.name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = map.as_object_mut() {
                    m.insert(k, if v.is_null() { json!("") } else { v });
                }
                continue;
            }
            _ => return Err(malformed()),
        };
        if field.repeated {
            let entry = out.entry(field.name).or_insert_with(|| Value::Array(Vec::new()));
            if let Some(a) = entry.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// The kinds a protobuf body may carry.
const TOP_LEVEL: &[&str] = &[
    "ConfigMap",
    "Secret",
    "Namespace",
    "ServiceAccount",
    "TokenRequest",
    "TokenReview",
    "SelfSubjectReview",
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectRulesReview",
];

/// Decodes a `k8s\0`-prefixed protobuf envelope into the JSON object it carries.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body.strip_prefix(b"k8s\0").ok_or_else(malformed)?;
    let mut r = Reader { buf: envelope, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((n, w)) = r.next()? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader { buf: tm, pos: 0 };
                while let Some((n, w)) = t.next()? {
                    match (n, w) {
                        (1, Wire::Bytes(x)) => api_version = text(x)?,
                        (2, Wire::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if fields(&kind).is_none() || !TOP_LEVEL.contains(&kind.as_str()) {
        return Err(ApiError::unsupported_media_type(&format!(
            "application/vnd.kubernetes.protobuf for {kind} (the simulated cluster decodes protobuf for ConfigMap, Secret, Namespace, ServiceAccount and the token and access reviews; send JSON, as `kubectl apply -f` does)"
        )));
    }
    let mut obj = decode_message(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_bytes(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, b.len() as u8];
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            field_bytes(1, b"cfg"),
            field_bytes(11, &[field_bytes(1, b"app"), field_bytes(2, b"web")].concat()),
        ]
        .concat();
        let raw = [
            field_bytes(1, &meta),
            field_bytes(2, &[field_bytes(1, b"k"), field_bytes(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field_bytes(1, &type_meta), field_bytes(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }
}
