//! A Rollout's Pod template as the controller holds it: the JSON it arrived as, checked to be a
//! Pod template and read into one when a plan needs it. The typed form weighs some 4 KiB before
//! any content (a Pod spec and each container are mostly absent options), its JSON a few hundred
//! bytes; with 10,000 Rollouts cached that is 40 MiB.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct PodTemplate(Box<str>);

impl PodTemplate {
    /// The template, typed. Its text was a valid Pod template when it was made, so this reads it
    /// back whole; an empty template stands in should that ever fail.
    pub fn typed(&self) -> PodTemplateSpec {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

impl Default for PodTemplate {
    fn default() -> Self {
        PodTemplate("{}".into())
    }
}

impl From<&PodTemplateSpec> for PodTemplate {
    fn from(t: &PodTemplateSpec) -> Self {
        // Through a JSON value, so both ways in give the same text (its keys in order).
        let text = serde_json::to_value(t).map_or_else(|_| "{}".to_string(), |v| v.to_string());
        PodTemplate(text.into())
    }
}

impl From<PodTemplateSpec> for PodTemplate {
    fn from(t: PodTemplateSpec) -> Self {
        PodTemplate::from(&t)
    }
}

impl Serialize for PodTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PodTemplate {
    /// Fails as the typed template would (a field of the wrong type), and keeps the fields the
    /// typed one does not know, so writing a Rollout back loses none.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        PodTemplateSpec::deserialize(&value).map_err(serde::de::Error::custom)?;
        Ok(PodTemplate(value.to_string().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_reads_back_as_it_came_and_a_wrong_one_is_refused() {
        let json = serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "example/web:1", "ports": [{"containerPort": 8080}]}]}
        });
        let t: PodTemplate = serde_json::from_value(json.clone()).unwrap();
        let typed = t.typed();
        assert_eq!(
            typed.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("example/web:1")
        );
        assert_eq!(serde_json::to_value(&t).unwrap(), json);
        assert_eq!(PodTemplate::from(&typed), t, "the typed form says the same");
        let wrong = serde_json::json!({"spec": {"containers": "web"}});
        let err = serde_json::from_value::<PodTemplate>(wrong).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn fields_the_typed_template_lacks_are_kept() {
        let json = serde_json::json!({"spec": {"containers": [{"name": "web", "image": "x", "futureField": true}]}});
        let t: PodTemplate = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), json);
    }

    #[test]
    fn it_is_read_from_yaml_too() {
        let t: PodTemplate =
            serde_saphyr::from_str("spec:\n  containers:\n  - name: web\n    image: example/web:2\n").unwrap();
        assert_eq!(
            t.typed().spec.unwrap().containers[0].image.as_deref(),
            Some("example/web:2")
        );
    }
}
