//! The OpenAPI v2 document in the protobuf form kubectl asks for (gnostic's `openapi.v2.Document`,
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). It carries what
//! kubectl reads, the definitions with their schemas, and leaves out the paths, which it does not.

use super::encode::Writer;
use serde_json::Value;

/// `openapi.v2.Document`: swagger 1, info 2, definitions 9.
pub fn document(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Writer::default();
    info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
    info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    w.message(2, info);
    let mut definitions = Writer::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        definitions.message(1, named_schema(name, s));
    }
    w.message(9, definitions);
    w.into_bytes()
}

/// `NamedSchema`: name 1, value 2.
fn named_schema(name: &str, s: &Value) -> Writer {
    let mut w = Writer::default();
    w.string(1, name);
    w.message(2, schema(s));
    w
}

/// `Any`: a value gnostic keeps as YAML text (field 2); JSON is YAML.
fn any(v: &Value) -> Writer {
    let mut w = Writer::default();
    w.string(2, &v.to_string());
    w
}

/// `Schema`, field by field as gnostic numbers them.
fn schema(s: &Value) -> Writer {
    let mut w = Writer::default();
    let Some(fields) = s.as_object() else {
        return w;
    };
    for (key, v) in fields {
        match (key.as_str(), v) {
            ("$ref", Value::String(t)) => w.string(1, t),
            ("format", Value::String(t)) => w.string(2, t),
            ("title", Value::String(t)) => w.string(3, t),
            ("description", Value::String(t)) => w.string(4, t),
            ("default", v) => w.message(5, any(v)),
            ("multipleOf", Value::Number(n)) => w.double(6, n.as_f64().unwrap_or_default()),
            ("maximum", Value::Number(n)) => w.double(7, n.as_f64().unwrap_or_default()),
            ("exclusiveMaximum", Value::Bool(b)) => w.bool(8, *b),
            ("minimum", Value::Number(n)) => w.double(9, n.as_f64().unwrap_or_default()),
            ("exclusiveMinimum", Value::Bool(b)) => w.bool(10, *b),
            ("maxLength", Value::Number(n)) => w.int64(11, n.as_i64().unwrap_or_default()),
            ("minLength", Value::Number(n)) => w.int64(12, n.as_i64().unwrap_or_default()),
            ("pattern", Value::String(t)) => w.string(13, t),
            ("maxItems", Value::Number(n)) => w.int64(14, n.as_i64().unwrap_or_default()),
            ("minItems", Value::Number(n)) => w.int64(15, n.as_i64().unwrap_or_default()),
            ("uniqueItems", Value::Bool(b)) => w.bool(16, *b),
            ("maxProperties", Value::Number(n)) => w.int64(17, n.as_i64().unwrap_or_default()),
            ("minProperties", Value::Number(n)) => w.int64(18, n.as_i64().unwrap_or_default()),
            ("required", Value::Array(names)) => {
                for n in names.iter().filter_map(Value::as_str) {
                    w.string(19, n);
                }
            }
            ("enum", Value::Array(values)) => {
                for v in values {
                    w.message(20, any(v));
                }
            }
            // AdditionalPropertiesItem: a schema (1) or a boolean (2).
            ("additionalProperties", v) => {
                let mut item = Writer::default();
                match v {
                    Value::Bool(b) => item.bool(2, *b),
                    _ => item.message(1, schema(v)),
                }
                w.message(21, item);
            }
            // TypeItem: the type names (1).
            ("type", Value::String(t)) => {
                let mut item = Writer::default();
                item.string(1, t);
                w.message(22, item);
            }
            // ItemsItem: the item schemas (1).
            ("items", v) => {
                let mut item = Writer::default();
                for s in v.as_array().map_or_else(|| vec![v], |a| a.iter().collect()) {
                    item.message(1, schema(s));
                }
                w.message(23, item);
            }
            // Properties: NamedSchemas (1).
            ("properties", Value::Object(properties)) => {
                let mut item = Writer::default();
                for (name, s) in properties {
                    item.message(1, named_schema(name, s));
                }
                w.message(25, item);
            }
            ("readOnly", Value::Bool(b)) => w.bool(27, *b),
            ("example", v) => w.message(30, any(v)),
            // Vendor extensions: NamedAny, name 1 and value 2.
            (name, v) if name.starts_with("x-") => {
                let mut named = Writer::default();
                named.string(1, name);
                named.message(2, any(v));
                w.message(31, named);
            }
            _ => {}
        }
    }
    w
}
