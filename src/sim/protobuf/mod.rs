//! Protobuf request bodies. kubectl's typed commands (`kubectl create deployment`, `kubectl expose`,
//! `kubectl auth can-i` and the like) send `application/vnd.kubernetes.protobuf`; this decodes the
//! kinds they send (see `messages`) into the JSON the API server would store. Other kinds get a 415
//! that says to send JSON, which every other kubectl command and kube-rs do.

mod encode;
mod messages;
pub mod openapi_v2;

use super::status::ApiError;
use base64::Engine;
use messages::{Kind, TOP_LEVEL, fields};
use serde_json::{Map, Value, json};

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
        self.take(len)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ApiError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(malformed)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next (field number, wire value) pair.
    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => Wire::Bytes(self.bytes()?),
            1 => Wire::Fixed(self.take(8)?),
            5 => Wire::Fixed(self.take(4)?),
            _ => return Err(malformed()),
        };
        Ok(Some((key >> 3, wire)))
    }
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width value (`double`, `fixed32`...), which none of the decoded fields are.
    Fixed(&'a [u8]),
}

impl Wire<'_> {
    /// Whether this is what gogo-protobuf writes for a zero value of a non-pointer field.
    fn is_zero(&self) -> bool {
        match self {
            Wire::Varint(v) => *v == 0,
            Wire::Bytes(b) => b.is_empty(),
            Wire::Fixed(b) => b.iter().all(|x| *x == 0),
        }
    }
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

/// A message's fields as JSON. A zero value of a non-pointer field is left out, as Go's JSON
/// encoding leaves out an `omitempty` field; a field the tables do not know is an error unless it
/// is zero, so that nothing a client sent is silently dropped.
fn decode_message(message: &str, buf: &[u8]) -> Result<Value, ApiError> {
    let schema = fields(message).ok_or_else(malformed)?;
    let mut out = Map::new();
    let mut r = Reader { buf, pos: 0 };
    while let Some((number, wire)) = r.next()? {
        let Some(field) = schema.iter().find(|f| f.number == number) else {
            if wire.is_zero() {
                continue;
            }
            return Err(ApiError::unsupported_media_type(&format!(
                "application/vnd.kubernetes.protobuf with field {number} of {message}, which the simulated cluster does not decode; send JSON, as `kubectl apply -f` does"
            )));
        };
        let value = match (field.kind, wire) {
            (Kind::Ignored, _) => continue,
            (Kind::StrMap | Kind::BytesMap | Kind::QuantityMap, Wire::Bytes(b)) => {
                let (k, v) = map_entry(field.kind, b)?;
                let map = out.entry(field.name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = map.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            (Kind::Inline(name), Wire::Bytes(b)) => {
                if let Value::Object(inner) = decode_message(name, b)? {
                    out.extend(inner);
                }
                continue;
            }
            (kind, wire) => scalar(kind, wire)?,
        };
        if !field.pointer && !field.repeated && is_zero_json(&value) {
            continue;
        }
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

/// A zero that Go's JSON encoding leaves out of an `omitempty` field. Messages (`{}`) and the
/// zero time (`null`) stay: Go writes a struct field whatever it holds.
fn is_zero_json(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// One value that is not a map entry or an inlined message.
fn scalar(kind: Kind, wire: Wire<'_>) -> Result<Value, ApiError> {
    Ok(match (kind, wire) {
        (Kind::Str, Wire::Bytes(b)) => json!(text(b)?),
        (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
        // int32 and int64 alike: a negative int32 is sign-extended to 64 bits on the wire.
        (Kind::Int, Wire::Varint(v)) => json!(v as i64),
        (Kind::Time, Wire::Bytes(b)) => time(b)?,
        (Kind::Msg(name), Wire::Bytes(b)) => decode_message(name, b)?,
        (Kind::Quantity, Wire::Bytes(b)) => quantity(b)?,
        (Kind::IntOrString, Wire::Bytes(b)) => int_or_string(b)?,
        _ => return Err(malformed()),
    })
}

fn time(b: &[u8]) -> Result<Value, ApiError> {
    if b.is_empty() {
        return Ok(Value::Null);
    }
    let mut t = Reader { buf: b, pos: 0 };
    let mut seconds = 0i64;
    while let Some((n, w)) = t.next()? {
        if let (1, Wire::Varint(s)) = (n, w) {
            seconds = s as i64;
        }
    }
    let ts = jiff::Timestamp::from_second(seconds).map_err(|_| malformed())?;
    Ok(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// `resource.Quantity`: its one field is the text JSON shows.
fn quantity(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = String::new();
    while let Some((n, w)) = r.next()? {
        if let (1, Wire::Bytes(x)) = (n, w) {
            out = text(x)?;
        }
    }
    Ok(json!(out))
}

/// `intstr.IntOrString`: type 0 is the number `intVal`, type 1 the string `strVal`.
fn int_or_string(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
    while let Some((n, w)) = r.next()? {
        match (n, w) {
            (1, Wire::Varint(t)) => is_string = t == 1,
            (2, Wire::Varint(v)) => int = v as i64,
            (3, Wire::Bytes(x)) => string = text(x)?,
            _ => {}
        }
    }
    Ok(if is_string { json!(string) } else { json!(int) })
}

/// One entry of a `map<string, ...>` field: key 1, value 2.
fn map_entry(kind: Kind, b: &[u8]) -> Result<(String, Value), ApiError> {
    let mut e = Reader { buf: b, pos: 0 };
    let (mut key, mut value) = (String::new(), json!(""));
    while let Some((n, w)) = e.next()? {
        match (n, w, kind) {
            (1, Wire::Bytes(x), _) => key = text(x)?,
            (2, Wire::Bytes(x), Kind::StrMap) => value = json!(text(x)?),
            (2, Wire::Bytes(x), Kind::BytesMap) => value = json!(base64::engine::general_purpose::STANDARD.encode(x)),
            (2, Wire::Bytes(x), Kind::QuantityMap) => value = quantity(x)?,
            _ => {}
        }
    }
    Ok((key, value))
}

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
            "application/vnd.kubernetes.protobuf for {kind} (the simulated cluster decodes protobuf for the kinds kubectl's typed commands send: {}; send JSON, as `kubectl apply -f` does)",
            TOP_LEVEL.join(", ")
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

    fn varint_field(n: u64, v: u8) -> Vec<u8> {
        vec![(n << 3) as u8, v]
    }

    fn envelope(api_version: &[u8], kind: &[u8], raw: &[u8]) -> Vec<u8> {
        let type_meta = [field_bytes(1, api_version), field_bytes(2, kind)].concat();
        [b"k8s\0".to_vec(), field_bytes(1, &type_meta), field_bytes(2, raw)].concat()
    }

    #[test]
    fn zeros_of_plain_fields_go_and_those_of_pointers_stay() {
        // metadata {name: web, generateName: "", generation: 0, creationTimestamp: zero};
        // spec {replicas: 0 (a pointer), minReadySeconds: 0, paused: false,
        //       template {metadata {creationTimestamp: zero}}}; status {observedGeneration: 0}
        let meta = [
            field_bytes(1, b"web"),
            field_bytes(2, b""),
            varint_field(7, 0),
            field_bytes(8, b""),
        ]
        .concat();
        let template = field_bytes(1, &field_bytes(8, b""));
        let spec = [
            varint_field(1, 0),
            varint_field(5, 0),
            varint_field(7, 0),
            field_bytes(3, &template),
        ]
        .concat();
        let raw = [
            field_bytes(1, &meta),
            field_bytes(2, &spec),
            field_bytes(3, &varint_field(1, 0)),
        ]
        .concat();
        let obj = decode(&envelope(b"apps/v1", b"Deployment", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "creationTimestamp": null},
                   "spec": {"replicas": 0, "template": {"metadata": {"creationTimestamp": null}}}})
        );
    }

    #[test]
    fn int_or_string_and_quantities_read_as_json_shows_them() {
        // ServicePort {port: 80, targetPort: {type: 1, strVal: "http"}}
        let target = [varint_field(1, 1), field_bytes(3, b"http")].concat();
        let port = [varint_field(3, 80), field_bytes(4, &target)].concat();
        let raw = [
            field_bytes(1, &field_bytes(1, b"web")),
            field_bytes(2, &field_bytes(1, &port)),
        ]
        .concat();
        let svc = decode(&envelope(b"v1", b"Service", &raw)).unwrap();
        assert_eq!(svc["spec"]["ports"], json!([{"port": 80, "targetPort": "http"}]));
        // MetricTarget {averageValue: {string: "500m"}}
        let quantity = field_bytes(1, b"500m");
        let target = decode_message("MetricTarget", &field_bytes(3, &quantity)).unwrap();
        assert_eq!(target, json!({"averageValue": "500m"}));
    }

    #[test]
    fn a_field_it_cannot_read_is_refused_not_dropped() {
        // PodSpec field 14, securityContext, set: not in the tables.
        let spec = field_bytes(14, &varint_field(1, 1));
        let err = decode_message("PodSpec", &spec).unwrap_err();
        assert_eq!(err.code, 415, "{err:?}");
        // The same field empty is what a client writes for none: nothing is lost.
        assert_eq!(decode_message("PodSpec", &field_bytes(14, b"")).unwrap(), json!({}));
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
