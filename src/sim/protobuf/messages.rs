//! The protobuf messages the simulated cluster decodes, by field number: the kinds kubectl's typed
//! commands send (`kubectl create deployment|service|job|role|rolebinding|pdb|ingress|configmap|
//! secret|namespace|serviceaccount|token`, `kubectl expose`, `kubectl autoscale`, `kubectl auth`),
//! and what they hold. The numbers are those of Kubernetes' `generated.proto` files.

/// How a field's value is read and shown in JSON.
#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    Bool,
    Int,
    /// `metav1.Time`: seconds since the epoch; an empty message is the zero time, `null` in JSON.
    Time,
    Msg(&'static str),
    /// A message whose fields JSON shows in the parent's place (`IngressRule`'s `IngressRuleValue`).
    Inline(&'static str),
    StrMap,
    /// Bytes values appear base64-encoded in JSON.
    BytesMap,
    /// `map<string, Quantity>`: resource lists.
    QuantityMap,
    Quantity,
    /// `intstr.IntOrString`: a number or a string in JSON.
    IntOrString,
    /// Read and dropped: the status a client sends with a create, which the API server ignores.
    Ignored,
}

pub struct Field {
    pub number: u64,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// A Go pointer field: a zero value was set on purpose and stays. Other fields are written
    /// even when zero (gogo-protobuf writes every non-pointer field), and JSON leaves those out.
    pub pointer: bool,
}

/// A field that JSON leaves out when it is zero (`omitempty`).
const fn f(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
        pointer: false,
    }
}

/// A pointer field: present means set, zero or not.
const fn p(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        pointer: true,
        ..f(number, name, kind)
    }
}

const fn list(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        repeated: true,
        ..f(number, name, kind)
    }
}

use Kind::*;

const OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    p(10, "deletionGracePeriodSeconds", Int),
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
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];
const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", StrMap),
    list(2, "matchExpressions", Msg("LabelSelectorRequirement")),
];
const LABEL_SELECTOR_REQUIREMENT: &[Field] = &[f(1, "key", Str), f(2, "operator", Str), list(3, "values", Str)];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "data", StrMap),
    f(3, "binaryData", BytesMap),
    p(4, "immutable", Bool),
];
const SECRET: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "data", BytesMap),
    f(3, "type", Str),
    f(4, "stringData", StrMap),
    p(5, "immutable", Bool),
];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("NamespaceSpec")),
    f(3, "status", Ignored),
];
const NAMESPACE_SPEC: &[Field] = &[list(1, "finalizers", Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    list(3, "imagePullSecrets", Msg("LocalObjectReference")),
    p(4, "automountServiceAccountToken", Bool),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Str)];

const POD_TEMPLATE_SPEC: &[Field] = &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("PodSpec"))];
const POD_SPEC: &[Field] = &[
    list(2, "containers", Msg("Container")),
    list(20, "initContainers", Msg("Container")),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", Int),
    p(5, "activeDeadlineSeconds", Int),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", StrMap),
    f(8, "serviceAccountName", Str),
    f(9, "serviceAccount", Str),
    p(21, "automountServiceAccountToken", Bool),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    list(15, "imagePullSecrets", Msg("LocalObjectReference")),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    f(24, "priorityClassName", Str),
    p(25, "priority", Int),
    p(30, "enableServiceLinks", Bool),
];
const CONTAINER: &[Field] = &[
    f(1, "name", Str),
    f(2, "image", Str),
    list(3, "command", Str),
    list(4, "args", Str),
    f(5, "workingDir", Str),
    list(6, "ports", Msg("ContainerPort")),
    list(7, "env", Msg("EnvVar")),
    f(8, "resources", Msg("ResourceRequirements")),
    f(13, "terminationMessagePath", Str),
    f(20, "terminationMessagePolicy", Str),
    f(14, "imagePullPolicy", Str),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
];
const CONTAINER_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "hostPort", Int),
    f(3, "containerPort", Int),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];
const ENV_VAR: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
const RESOURCE_REQUIREMENTS: &[Field] = &[f(1, "limits", QuantityMap), f(2, "requests", QuantityMap)];

const DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("DeploymentSpec")),
    f(3, "status", Ignored),
];
const DEPLOYMENT_SPEC: &[Field] = &[
    p(1, "replicas", Int),
    f(2, "selector", Msg("LabelSelector")),
    f(3, "template", Msg("PodTemplateSpec")),
    f(4, "strategy", Msg("DeploymentStrategy")),
    f(5, "minReadySeconds", Int),
    p(6, "revisionHistoryLimit", Int),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", Int),
];
const DEPLOYMENT_STRATEGY: &[Field] = &[f(1, "type", Str), f(2, "rollingUpdate", Msg("RollingUpdateDeployment"))];
const ROLLING_UPDATE_DEPLOYMENT: &[Field] = &[p(1, "maxUnavailable", IntOrString), p(2, "maxSurge", IntOrString)];

const SERVICE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("ServiceSpec")),
    f(3, "status", Ignored),
];
const SERVICE_SPEC: &[Field] = &[
    list(1, "ports", Msg("ServicePort")),
    f(2, "selector", StrMap),
    f(3, "clusterIP", Str),
    list(18, "clusterIPs", Str),
    f(4, "type", Str),
    list(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    list(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", Int),
    f(13, "publishNotReadyAddresses", Bool),
    list(19, "ipFamilies", Str),
    p(17, "ipFamilyPolicy", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];
const SERVICE_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    p(6, "appProtocol", Str),
    f(3, "port", Int),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", Int),
];

const JOB: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("JobSpec")),
    f(3, "status", Ignored),
];
const JOB_SPEC: &[Field] = &[
    p(1, "parallelism", Int),
    p(2, "completions", Int),
    p(3, "activeDeadlineSeconds", Int),
    p(7, "backoffLimit", Int),
    p(12, "backoffLimitPerIndex", Int),
    p(13, "maxFailedIndexes", Int),
    f(4, "selector", Msg("LabelSelector")),
    p(5, "manualSelector", Bool),
    f(6, "template", Msg("PodTemplateSpec")),
    p(8, "ttlSecondsAfterFinished", Int),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
    p(14, "podReplacementPolicy", Str),
    p(15, "managedBy", Str),
];

const ROLE: &[Field] = &[f(1, "metadata", Msg("ObjectMeta")), list(2, "rules", Msg("PolicyRule"))];
const CLUSTER_ROLE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    list(2, "rules", Msg("PolicyRule")),
    f(3, "aggregationRule", Msg("AggregationRule")),
];
const POLICY_RULE: &[Field] = &[
    list(1, "verbs", Str),
    list(2, "apiGroups", Str),
    list(3, "resources", Str),
    list(4, "resourceNames", Str),
    list(5, "nonResourceURLs", Str),
];
const AGGREGATION_RULE: &[Field] = &[list(1, "clusterRoleSelectors", Msg("LabelSelector"))];
const ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    list(2, "subjects", Msg("Subject")),
    f(3, "roleRef", Msg("RoleRef")),
];
const SUBJECT: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiGroup", Str),
    f(3, "name", Str),
    f(4, "namespace", Str),
];
const ROLE_REF: &[Field] = &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];

const POD_DISRUPTION_BUDGET: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("PodDisruptionBudgetSpec")),
    f(3, "status", Ignored),
];
const POD_DISRUPTION_BUDGET_SPEC: &[Field] = &[
    p(1, "minAvailable", IntOrString),
    f(2, "selector", Msg("LabelSelector")),
    p(3, "maxUnavailable", IntOrString),
    p(4, "unhealthyPodEvictionPolicy", Str),
];

const INGRESS: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("IngressSpec")),
    f(3, "status", Ignored),
];
const INGRESS_SPEC: &[Field] = &[
    p(4, "ingressClassName", Str),
    f(1, "defaultBackend", Msg("IngressBackend")),
    list(2, "tls", Msg("IngressTLS")),
    list(3, "rules", Msg("IngressRule")),
];
const INGRESS_BACKEND: &[Field] = &[
    f(4, "service", Msg("IngressServiceBackend")),
    f(3, "resource", Msg("TypedLocalObjectReference")),
];
const TYPED_LOCAL_OBJECT_REFERENCE: &[Field] = &[p(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];
const INGRESS_SERVICE_BACKEND: &[Field] = &[f(1, "name", Str), f(2, "port", Msg("ServiceBackendPort"))];
const SERVICE_BACKEND_PORT: &[Field] = &[f(1, "name", Str), f(2, "number", Int)];
const INGRESS_TLS: &[Field] = &[list(1, "hosts", Str), f(2, "secretName", Str)];
const INGRESS_RULE: &[Field] = &[f(1, "host", Str), f(2, "ingressRuleValue", Inline("IngressRuleValue"))];
const INGRESS_RULE_VALUE: &[Field] = &[f(1, "http", Msg("HTTPIngressRuleValue"))];
const HTTP_INGRESS_RULE_VALUE: &[Field] = &[list(1, "paths", Msg("HTTPIngressPath"))];
const HTTP_INGRESS_PATH: &[Field] = &[
    f(1, "path", Str),
    p(3, "pathType", Str),
    f(2, "backend", Msg("IngressBackend")),
];

const HORIZONTAL_POD_AUTOSCALER: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("HorizontalPodAutoscalerSpec")),
    f(3, "status", Ignored),
];
const HORIZONTAL_POD_AUTOSCALER_SPEC: &[Field] = &[
    f(1, "scaleTargetRef", Msg("CrossVersionObjectReference")),
    p(2, "minReplicas", Int),
    f(3, "maxReplicas", Int),
    list(4, "metrics", Msg("MetricSpec")),
];
const CROSS_VERSION_OBJECT_REFERENCE: &[Field] = &[f(1, "kind", Str), f(2, "name", Str), f(3, "apiVersion", Str)];
const METRIC_SPEC: &[Field] = &[f(1, "type", Str), f(4, "resource", Msg("ResourceMetricSource"))];
const RESOURCE_METRIC_SOURCE: &[Field] = &[f(1, "name", Str), f(2, "target", Msg("MetricTarget"))];
const METRIC_TARGET: &[Field] = &[
    f(1, "type", Str),
    p(2, "value", Quantity),
    p(3, "averageValue", Quantity),
    p(4, "averageUtilization", Int),
];

const TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("TokenRequestSpec")),
    f(3, "status", Ignored),
];
const TOKEN_REQUEST_SPEC: &[Field] = &[
    list(1, "audiences", Str),
    f(3, "boundObjectRef", Msg("BoundObjectReference")),
    p(4, "expirationSeconds", Int),
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
    f(3, "status", Ignored),
];
const TOKEN_REVIEW_SPEC: &[Field] = &[f(1, "token", Str), list(2, "audiences", Str)];
const SELF_REVIEW: &[Field] = &[f(1, "metadata", Msg("ObjectMeta")), f(2, "status", Ignored)];
const SSAR: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
    f(3, "status", Ignored),
];
const SSAR_SPEC: &[Field] = &[
    f(1, "resourceAttributes", Msg("ResourceAttributes")),
    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
];
const SAR: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("SubjectAccessReviewSpec")),
    f(3, "status", Ignored),
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
    f(3, "status", Ignored),
];
const SSRR_SPEC: &[Field] = &[f(1, "namespace", Str)];

/// The kinds a protobuf body may carry at its top level.
pub const TOP_LEVEL: &[&str] = &[
    "ConfigMap",
    "Secret",
    "Namespace",
    "ServiceAccount",
    "Deployment",
    "Service",
    "Job",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "PodDisruptionBudget",
    "Ingress",
    "HorizontalPodAutoscaler",
    "TokenRequest",
    "TokenReview",
    "SelfSubjectReview",
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectRulesReview",
];

pub fn fields(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ObjectMeta" => OBJECT_META,
        "OwnerReference" => OWNER_REFERENCE,
        "LabelSelector" => LABEL_SELECTOR,
        "LabelSelectorRequirement" => LABEL_SELECTOR_REQUIREMENT,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Namespace" => NAMESPACE,
        "NamespaceSpec" => NAMESPACE_SPEC,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "LocalObjectReference" => LOCAL_OBJECT_REFERENCE,
        "PodTemplateSpec" => POD_TEMPLATE_SPEC,
        "PodSpec" => POD_SPEC,
        "Container" => CONTAINER,
        "ContainerPort" => CONTAINER_PORT,
        "EnvVar" => ENV_VAR,
        "ResourceRequirements" => RESOURCE_REQUIREMENTS,
        "Deployment" => DEPLOYMENT,
        "DeploymentSpec" => DEPLOYMENT_SPEC,
        "DeploymentStrategy" => DEPLOYMENT_STRATEGY,
        "RollingUpdateDeployment" => ROLLING_UPDATE_DEPLOYMENT,
        "Service" => SERVICE,
        "ServiceSpec" => SERVICE_SPEC,
        "ServicePort" => SERVICE_PORT,
        "Job" => JOB,
        "JobSpec" => JOB_SPEC,
        "Role" => ROLE,
        "ClusterRole" => CLUSTER_ROLE,
        "PolicyRule" => POLICY_RULE,
        "AggregationRule" => AGGREGATION_RULE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "Subject" => SUBJECT,
        "RoleRef" => ROLE_REF,
        "PodDisruptionBudget" => POD_DISRUPTION_BUDGET,
        "PodDisruptionBudgetSpec" => POD_DISRUPTION_BUDGET_SPEC,
        "Ingress" => INGRESS,
        "IngressSpec" => INGRESS_SPEC,
        "IngressBackend" => INGRESS_BACKEND,
        "TypedLocalObjectReference" => TYPED_LOCAL_OBJECT_REFERENCE,
        "IngressServiceBackend" => INGRESS_SERVICE_BACKEND,
        "ServiceBackendPort" => SERVICE_BACKEND_PORT,
        "IngressTLS" => INGRESS_TLS,
        "IngressRule" => INGRESS_RULE,
        "IngressRuleValue" => INGRESS_RULE_VALUE,
        "HTTPIngressRuleValue" => HTTP_INGRESS_RULE_VALUE,
        "HTTPIngressPath" => HTTP_INGRESS_PATH,
        "HorizontalPodAutoscaler" => HORIZONTAL_POD_AUTOSCALER,
        "HorizontalPodAutoscalerSpec" => HORIZONTAL_POD_AUTOSCALER_SPEC,
        "CrossVersionObjectReference" => CROSS_VERSION_OBJECT_REFERENCE,
        "MetricSpec" => METRIC_SPEC,
        "ResourceMetricSource" => RESOURCE_METRIC_SOURCE,
        "MetricTarget" => METRIC_TARGET,
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
