//! The simulated cluster's storage: objects by resource, one resourceVersion counter, a bounded
//! history of changes for watches, and every write's admission path (the "API server" proper).

use super::convert::{from_storage, to_storage};
use super::lists::Shape;
use super::managed::{self, Writer};
use super::meta;
use super::patch::{self, PatchType};
use super::policy::{self, Operation};
use super::registry::Registry;
use super::resources::{ResourceType, StorageKey};
use super::status::ApiError;
use super::users::UserInfo;
use super::{admission, crd, schema};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as stored in the history and sent to watchers (storage form).
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub key: StorageKey,
    pub type_: EventType,
    pub object: Arc<Value>,
    /// The object before the change, so selector-filtered watches can tell enter from leave.
    pub old: Option<Arc<Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subresource {
    Main,
    Status,
    /// A write through `/scale`: the main object changes, but admission and managed fields
    /// see the subresource, as in the API server.
    Scale,
}

impl Subresource {
    fn name(self) -> &'static str {
        match self {
            Subresource::Main => "",
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Who makes an API request, and the warnings admission adds to its answer. Writes without
/// one are the sim's own controllers'.
#[derive(Debug, Default)]
pub struct Caller {
    pub user: UserInfo,
    pub warnings: Mutex<Vec<String>>,
}

impl Caller {
    pub fn new(user: UserInfo) -> Self {
        Caller {
            user,
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct WriteOpts<'a> {
    pub manager: &'a str,
    pub dry_run: bool,
    pub force: bool,
    pub subresource: Subresource,
    pub caller: Option<&'a Caller>,
}

impl<'a> WriteOpts<'a> {
    pub fn by(manager: &'a str) -> Self {
        WriteOpts {
            manager,
            dry_run: false,
            force: false,
            subresource: Subresource::Main,
            caller: None,
        }
    }
}

#[derive(Default)]
pub struct DeleteOpts<'a> {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
    pub caller: Option<&'a Caller>,
}

/// What admission policies learn of a write besides its objects.
#[derive(Clone, Copy)]
struct Admission<'a> {
    operation: Operation,
    subresource: &'static str,
    caller: Option<&'a Caller>,
    dry_run: bool,
}

pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    pub next: Option<ObjKey>,
}

struct Inner {
    rv: u64,
    objects: HashMap<StorageKey, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    /// Changes at or below this resourceVersion are no longer in the history.
    compacted: u64,
    registry: Registry,
    by_uid: HashMap<String, (StorageKey, ObjKey)>,
    /// Owner uid → dependents, for garbage collection.
    dependents: HashMap<String, BTreeSet<(StorageKey, ObjKey)>>,
    /// Evaluates CRDs' CEL validation rules.
    cel: kube::core::cel::Validator,
    /// ValidatingAdmissionPolicies by name, compiled when stored.
    policies: HashMap<String, Arc<policy::compile::CompiledPolicy>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

fn obj_key(obj: &Value) -> ObjKey {
    (meta::namespace(obj).to_string(), meta::name(obj).to_string())
}

/// The parts of an object that count as its spec for `metadata.generation`.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

/// Equal but for managed-field timestamps: such a write is a no-op and is not stored.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(entries) = v["metadata"]["managedFields"].as_array_mut() {
            for e in entries {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

impl Store {
    pub fn new(history_limit: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(65536);
        let store = Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(100),
                compacted: 1,
                registry: Registry::default(),
                by_uid: HashMap::new(),
                dependents: HashMap::new(),
                cel: kube::core::cel::Validator::new(),
                policies: HashMap::new(),
            }),
            tx,
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let rt = store.lock().registry.find("", "v1", "namespaces");
            if let Some(rt) = rt {
                // Creating the built-in namespaces cannot fail on an empty store.
                let _ = store.create(&rt, None, obj, &WriteOpts::by("kube-apiserver"));
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock().registry.find(group, version, plural)
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        let obj = inner.get(rt, ns, name)?;
        Ok(from_storage(rt, &obj))
    }

    /// A page of objects in key order, starting after `after`, that pass `keep`.
    pub fn list(
        &self,
        key: &StorageKey,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
        keep: &dyn Fn(&Value) -> bool,
    ) -> ListPage {
        let inner = self.lock();
        let rv = inner.rv;
        let Some(objects) = inner.objects.get(key) else {
            return ListPage {
                items: vec![],
                rv,
                next: None,
            };
        };
        let start = match (after, ns) {
            (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
            (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut next = None;
        for (k, obj) in objects.range((start, std::ops::Bound::Unbounded)) {
            if let Some(ns) = ns
                && k.0 != ns
            {
                break;
            }
            if !keep(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = items.last().map(|o: &Arc<Value>| obj_key(o));
                break;
            }
            items.push(obj.clone());
        }
        ListPage { items, rv, next }
    }

    /// Everything a watch from `from` must replay, and a receiver for what follows. `None` means
    /// "from now, starting with the current objects as ADDED events".
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        key: &StorageKey,
        from: Option<u64>,
    ) -> Result<(Vec<Arc<WatchEvent>>, broadcast::Receiver<Arc<WatchEvent>>, u64), ApiError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let replay = match from {
            None => inner
                .objects
                .get(key)
                .into_iter()
                .flat_map(|m| m.values())
                .map(|o| {
                    Arc::new(WatchEvent {
                        rv: meta::resource_version(o).parse().unwrap_or(0),
                        key: key.clone(),
                        type_: EventType::Added,
                        object: o.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(rv) if rv < inner.compacted => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    inner.compacted + 1
                )));
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|e| e.rv > rv && e.key == *key)
                .cloned()
                .collect(),
        };
        Ok((replay, rx, inner.rv))
    }

    pub fn compacted_rv(&self) -> u64 {
        self.lock().compacted
    }

    pub fn create(&self, rt: &ResourceType, ns: Option<&str>, obj: Value, opts: &WriteOpts) -> Result<Value, ApiError> {
        let mut obj = check_body(rt, obj)?;
        let mut inner = self.lock();
        inner.prepare_create(rt, ns, &mut obj)?;
        inner.check_policies(rt, Admission::of(Operation::Create, opts), None, Some(&obj))?;
        let shape_schema = inner.storage_schema(rt);
        let shape = Shape::root(shape_schema.as_deref());
        let writer = Writer {
            manager: opts.manager,
            api_version: &rt.api_version(),
            subresource: "",
        };
        managed::record_update(None, &mut obj, &shape, &writer);
        let stored = inner.insert_new(rt, obj, opts.dry_run, &self.tx)?;
        Ok(from_storage(rt, &stored))
    }

    /// PUT: replaces the object, checking `metadata.resourceVersion` when given.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let obj = check_body(rt, obj)?;
        if !meta::name(&obj).is_empty() && meta::name(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&obj)
            )));
        }
        let mut inner = self.lock();
        let old = inner.get(rt, ns, name)?;
        let given_rv = meta::resource_version(&obj);
        ensure_fresh(rt, name, given_rv, &old)?;
        let new = to_storage(rt, obj);
        let stored = inner.commit_update(rt, old, new, opts, true, &self.tx)?;
        Ok(from_storage(rt, &stored))
    }

    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch_type: PatchType,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let existing = match inner.get(rt, ns, name) {
            Ok(o) => Some(o),
            Err(e) if e.code == 404 && patch_type == PatchType::Apply && opts.subresource == Subresource::Main => None,
            Err(e) => return Err(e),
        };
        let schema = inner.storage_schema(rt);
        let shape = Shape::root(schema.as_deref());
        let api_version = rt.api_version();
        let writer = Writer {
            manager: opts.manager,
            api_version: &api_version,
            subresource: opts.subresource.name(),
        };
        let old_external = existing.as_ref().map(|o| from_storage(rt, o));
        if patch_type == PatchType::Apply {
            let mut applied = check_body(rt, body.clone())?;
            // As in the API server: the name may be left out when the object exists, since the
            // merge keeps the live one; creating needs it.
            let unnamed_update = meta::name(&applied).is_empty() && existing.is_some();
            if meta::name(&applied) != name && !unnamed_update {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&applied)
                )));
            }
            managed::clean_applied(&mut applied);
            if rt.status_subresource {
                scope_to_subresource(&mut applied, opts.subresource);
            }
            let namespace = rt.namespaced.then_some(ns);
            let live = old_external
                .clone()
                .unwrap_or_else(|| managed::empty_object(&api_version, &rt.kind, name, namespace));
            let merged = managed::apply(&live, &applied, &shape, &writer, opts.force)?;
            let merged = to_storage(rt, merged);
            let stored = match existing {
                Some(old) => inner.commit_update(rt, old, merged, opts, false, &self.tx)?,
                None => {
                    let mut obj = merged;
                    inner.prepare_create(rt, namespace, &mut obj)?;
                    inner.check_policies(rt, Admission::of(Operation::Create, opts), None, Some(&obj))?;
                    inner.insert_new(rt, obj, opts.dry_run, &self.tx)?
                }
            };
            return Ok(from_storage(rt, &stored));
        }
        let (Some(old), Some(old_external)) = (existing, old_external) else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let new = match patch_type {
            PatchType::Json => patch::json_patch(&old_external, body)?,
            PatchType::Merge => patch::merge_patch(&old_external, body)?,
            PatchType::Strategic => {
                if rt.crd.is_some() {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                    ));
                }
                patch::strategic_merge_patch(&old_external, body, &shape)?
            }
            PatchType::Apply => return Err(ApiError::internal("apply patches are handled above")),
        };
        let given_rv = meta::resource_version(&new);
        ensure_fresh(rt, name, given_rv, &old)?;
        let new = to_storage(rt, new);
        let stored = inner.commit_update(rt, old, new, opts, true, &self.tx)?;
        Ok(from_storage(rt, &stored))
    }

    pub fn delete(&self, rt: &ResourceType, ns: &str, name: &str, opts: &DeleteOpts) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let old = inner.get(rt, ns, name)?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid(&old)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&old)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let stored = inner.delete(rt, old, opts, &self.tx)?;
        Ok(from_storage(rt, &stored))
    }

    // ---- what the garbage collector and controllers need ----

    pub fn by_uid(&self, uid: &str) -> Option<(Arc<ResourceType>, Arc<Value>)> {
        let inner = self.lock();
        let (key, ok) = inner.by_uid.get(uid)?;
        let obj = inner.objects.get(key)?.get(ok)?.clone();
        let rt = inner.registry.storage_type(key)?;
        Some((rt, obj))
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<(Arc<ResourceType>, Arc<Value>)> {
        let inner = self.lock();
        inner
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|(key, ok)| {
                let obj = inner.objects.get(key)?.get(ok)?.clone();
                Some((inner.registry.storage_type(key)?, obj))
            })
            .collect()
    }

    /// Every namespaced object in a namespace.
    pub fn objects_in_namespace(&self, ns: &str) -> Vec<(Arc<ResourceType>, Arc<Value>)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (key, objects) in &inner.objects {
            let Some(rt) = inner.registry.storage_type(key) else {
                continue;
            };
            if !rt.namespaced {
                continue;
            }
            let from = (ns.to_string(), String::new());
            for (k, obj) in objects.range(from..) {
                if k.0 != ns {
                    break;
                }
                out.push((rt.clone(), obj.clone()));
            }
        }
        out
    }

    /// Removes a namespace whose contents are gone (the namespace controller's last step).
    pub fn finalize_namespace(&self, name: &str) {
        let mut inner = self.lock();
        let Some(rt) = inner.registry.find("", "v1", "namespaces") else {
            return;
        };
        if let Ok(obj) = inner.get(&rt, "", name)
            && meta::is_deleting(&obj)
        {
            inner.remove(&rt, obj, &self.tx);
        }
    }

    /// The internal read-modify-write controllers use: retried on conflicts by the caller.
    pub fn modify(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &WriteOpts,
        change: &dyn Fn(&mut Value),
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let old = inner.get(rt, ns, name)?;
        let mut new = (*old).clone();
        change(&mut new);
        if new == *old {
            return Ok((*old).clone());
        }
        let stored = inner.commit_update(rt, old, new, opts, true, &self.tx)?;
        Ok((*stored).clone())
    }
}

/// A write that names a resourceVersion is refused unless it is the current one.
/// A controller loop: `act` on each change `wanted` picks out, and `resync` over everything at the
/// start and whenever the loop has fallen behind the changes it was sent.
pub async fn react(
    store: Arc<Store>,
    wanted: impl Fn(&WatchEvent) -> bool,
    act: impl Fn(&Store, &WatchEvent),
    resync: impl Fn(&Store),
) {
    let mut rx = store.subscribe();
    resync(&store);
    loop {
        match rx.recv().await {
            Ok(e) if wanted(&e) => act(&store, &e),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => resync(&store),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub fn ensure_fresh(rt: &ResourceType, name: &str, given_rv: &str, current: &Value) -> Result<(), ApiError> {
    if !given_rv.is_empty() && given_rv != meta::resource_version(current) {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

/// With a status subresource, the main endpoint owns everything but status and /status owns only
/// status: an applied configuration keeps just its endpoint's part.
fn scope_to_subresource(applied: &mut Value, sub: Subresource) {
    let Some(map) = applied.as_object_mut() else { return };
    match sub {
        Subresource::Main | Subresource::Scale => {
            map.remove("status");
        }
        Subresource::Status => {
            map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| k == "name" || k == "namespace");
            }
        }
    }
}

/// Checks the body names the right kind and version, as the API server does.
fn check_body(rt: &ResourceType, obj: Value) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    if let Some(av) = obj["apiVersion"].as_str()
        && av != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(kind) = obj["kind"].as_str()
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(obj)
}

impl Inner {
    fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let ns = if rt.namespaced { ns } else { "" };
        self.objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    fn storage_schema(&self, rt: &ResourceType) -> Option<Arc<Value>> {
        self.registry
            .storage_type(&rt.storage_key())
            .and_then(|t| t.schema.clone())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Names, namespace and server-set metadata of a new object (storage form on return).
    fn prepare_create(&mut self, rt: &ResourceType, ns: Option<&str>, obj: &mut Value) -> Result<(), ApiError> {
        if rt.namespaced {
            let url_ns = ns.unwrap_or("");
            let body_ns = meta::namespace(obj).to_string();
            if !body_ns.is_empty() && !url_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns = if url_ns.is_empty() { body_ns } else { url_ns.to_string() };
            if ns.is_empty() {
                return Err(ApiError::bad_request(
                    "an empty namespace may not be set during creation",
                ));
            }
            match self
                .objects
                .get(&StorageKey {
                    group: String::new(),
                    plural: "namespaces".into(),
                })
                .and_then(|m| m.get(&(String::new(), ns.clone())))
            {
                None => return Err(ApiError::not_found("", "namespaces", &ns)),
                Some(n) if meta::is_deleting(n) && rt.plural != "events" => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rt.plural,
                        meta::name(obj)
                    )));
                }
                Some(_) => {}
            }
            meta::set_meta(obj, "namespace", json!(ns));
        } else {
            meta::remove_meta(obj, "namespace");
        }
        if meta::name(obj).is_empty() {
            let prefix = obj["metadata"]["generateName"].as_str().unwrap_or("").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            meta::set_meta(obj, "name", json!(format!("{prefix}{}", meta::random_suffix(5))));
        }
        if self
            .objects
            .get(&rt.storage_key())
            .is_some_and(|m| m.contains_key(&obj_key(obj)))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, meta::name(obj)));
        }
        for k in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta::remove_meta(obj, k);
        }
        meta::set_meta(obj, "uid", json!(meta::new_uid()));
        meta::set_meta(obj, "creationTimestamp", json!(meta::now_rfc3339()));
        if rt.has_generation {
            meta::set_meta(obj, "generation", json!(1));
        } else {
            meta::remove_meta(obj, "generation");
        }
        if rt.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        *obj = to_storage(rt, std::mem::take(obj));
        self.admit(rt, None, obj)
    }

    /// Defaults, prunes and validates; CRDs also get their accepted status here.
    fn admit(&self, rt: &ResourceType, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
        match &rt.schema {
            Some(schema) => {
                schema::prune_and_default(obj, schema);
                let mut errors = schema::validate(obj, schema);
                if errors.is_empty()
                    && let Some(rules) = &rt.cel_rules
                    && let Err(failed) = self.cel.validate_compiled(rules, obj, old)
                {
                    // Rules this evaluator cannot run are not held against the object.
                    errors.extend(
                        failed
                            .into_vec()
                            .into_iter()
                            .filter(|e| e.kind == kube::core::cel::ErrorKind::ValidationFailure)
                            .map(|e| (e.field_path.clone(), format!("Invalid value: {}", e.message))),
                    );
                }
                if !errors.is_empty() {
                    return Err(ApiError::invalid(
                        &format!("{}.{}", rt.kind, rt.group),
                        meta::name(obj),
                        errors,
                    ));
                }
                check_metadata(rt, obj)
            }
            None => {
                // Decoded into its Go type, a built-in object loses the fields the type lacks:
                // here in its stored form (an events.k8s.io Event is stored as a core one).
                let stored = self.registry.storage_type(&rt.storage_key());
                if let Some(schema) = super::builtin_schemas::of(stored.as_deref().unwrap_or(rt)) {
                    schema::prune_and_default(obj, &schema);
                }
                admission::admit_builtin(rt, old, obj)?;
                if rt.group == "apiextensions.k8s.io" {
                    obj["status"] = crd::accepted_status(obj, old);
                    let kinds = crd::crd_types(obj);
                    for t in &kinds {
                        let taken = self.registry.all().iter().any(|other| {
                            other.group == t.group
                                && other.plural == t.plural
                                && other.crd.as_deref() != t.crd.as_deref()
                        });
                        if taken {
                            return Err(ApiError::invalid(
                                "CustomResourceDefinition.apiextensions.k8s.io",
                                meta::name(obj),
                                vec![(
                                    "spec.names.plural".into(),
                                    "Invalid value: the resource is already served".into(),
                                )],
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn insert_new(
        &mut self,
        rt: &ResourceType,
        mut obj: Value,
        dry_run: bool,
        tx: &broadcast::Sender<Arc<WatchEvent>>,
    ) -> Result<Arc<Value>, ApiError> {
        if dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = self.next_rv();
        meta::set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.store_object(rt, None, obj.clone());
        self.emit(rt, EventType::Added, obj.clone(), None, tx);
        Ok(obj)
    }

    fn commit_update(
        &mut self,
        rt: &ResourceType,
        old: Arc<Value>,
        mut new: Value,
        opts: &WriteOpts,
        record: bool,
        tx: &broadcast::Sender<Arc<WatchEvent>>,
    ) -> Result<Arc<Value>, ApiError> {
        // The server owns identity and lifecycle metadata.
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => meta::set_meta(&mut new, k, v.clone()),
                None => meta::remove_meta(&mut new, k),
            }
        }
        if rt.status_subresource {
            match opts.subresource {
                Subresource::Main | Subresource::Scale => match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                },
                Subresource::Status => {
                    let mut merged = (*old).clone();
                    match new.get("status") {
                        Some(s) => merged["status"] = s.clone(),
                        None => {
                            if let Some(m) = merged.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                    if let Some(mf) = new["metadata"].get("managedFields") {
                        meta::set_meta(&mut merged, "managedFields", mf.clone());
                    }
                    new = merged;
                }
            }
        }
        if rt.has_generation && spec_part(&old) != spec_part(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::set_meta(&mut new, "generation", json!(generation));
        }
        let storage = self.registry.storage_type(&rt.storage_key());
        let storage_rt = storage.as_deref().unwrap_or(rt);
        self.admit(rt, Some(&old), &mut new)?;
        self.check_policies(rt, Admission::of(Operation::Update, opts), Some(&old), Some(&new))?;
        if record {
            let schema = self.storage_schema(rt);
            let shape = Shape::root(schema.as_deref());
            let api_version = rt.api_version();
            let writer = Writer {
                manager: opts.manager,
                api_version: &api_version,
                subresource: opts.subresource.name(),
            };
            managed::record_update(Some(&old), &mut new, &shape, &writer);
        }
        meta::set_meta(&mut new, "resourceVersion", old["metadata"]["resourceVersion"].clone());
        if same_object(&old, &new) || opts.dry_run {
            return Ok(if opts.dry_run { Arc::new(new) } else { old });
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() && !is_namespace {
            return Ok(self.remove(storage_rt, Arc::new(new), tx));
        }
        let rv = self.next_rv();
        meta::set_meta(&mut new, "resourceVersion", json!(rv.to_string()));
        let new = Arc::new(new);
        self.store_object(storage_rt, Some(&old), new.clone());
        self.emit(storage_rt, EventType::Modified, new.clone(), Some(old), tx);
        Ok(new)
    }

    fn delete(
        &mut self,
        rt: &ResourceType,
        old: Arc<Value>,
        opts: &DeleteOpts,
        tx: &broadcast::Sender<Arc<WatchEvent>>,
    ) -> Result<Arc<Value>, ApiError> {
        let admission = Admission {
            operation: Operation::Delete,
            subresource: "",
            caller: opts.caller,
            dry_run: opts.dry_run,
        };
        self.check_policies(rt, admission, Some(&old), None)?;
        if opts.dry_run {
            return Ok(old);
        }
        let propagation = opts.propagation.unwrap_or(Propagation::Background);
        let mut finalizers = meta::finalizers(&old);
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let has_dependents = self.dependents.get(meta::uid(&old)).is_some_and(|d| !d.is_empty());
        match propagation {
            Propagation::Foreground if has_dependents && !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            Propagation::Orphan if has_dependents && !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            _ => {}
        }
        if finalizers.is_empty() && !is_namespace {
            return Ok(self.remove(rt, old, tx));
        }
        if meta::is_deleting(&old) && meta::finalizers(&old) == finalizers {
            return Ok(old);
        }
        // Finalizers (or a namespace's contents) hold the object: mark it and let them finish.
        let mut new = (*old).clone();
        if !meta::is_deleting(&new) {
            meta::set_meta(&mut new, "deletionTimestamp", json!(meta::now_rfc3339()));
            meta::set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        }
        if !finalizers.is_empty() {
            meta::set_meta(&mut new, "finalizers", json!(finalizers));
        }
        if is_namespace {
            meta::set_path(&mut new, "status.phase", json!("Terminating"));
        }
        let rv = self.next_rv();
        meta::set_meta(&mut new, "resourceVersion", json!(rv.to_string()));
        let new = Arc::new(new);
        self.store_object(rt, Some(&old), new.clone());
        self.emit(rt, EventType::Modified, new.clone(), Some(old), tx);
        Ok(new)
    }

    /// Takes an object out of storage for good.
    fn remove(&mut self, rt: &ResourceType, obj: Arc<Value>, tx: &broadcast::Sender<Arc<WatchEvent>>) -> Arc<Value> {
        let key = rt.storage_key();
        let ok = obj_key(&obj);
        let old = self.objects.get_mut(&key).and_then(|m| m.remove(&ok));
        self.by_uid.remove(meta::uid(&obj));
        for owner in meta::owner_uids(&obj) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(&(key.clone(), ok.clone()));
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
        let rv = self.next_rv();
        let mut gone = (*obj).clone();
        meta::set_meta(&mut gone, "resourceVersion", json!(rv.to_string()));
        let gone = Arc::new(gone);
        if rt.group == "apiextensions.k8s.io" {
            self.remove_crd_kinds(&gone, tx);
        }
        if rt.group == policy::GROUP && rt.plural == policy::POLICIES {
            self.policies.remove(meta::name(&gone));
        }
        self.emit(rt, EventType::Deleted, gone.clone(), old, tx);
        gone
    }

    /// A CRD going away takes its objects and its kinds with it.
    fn remove_crd_kinds(&mut self, crd_obj: &Value, tx: &broadcast::Sender<Arc<WatchEvent>>) {
        let crd_name = meta::name(crd_obj).to_string();
        let kinds = crd::crd_types(crd_obj);
        if let Some(t) = kinds.first() {
            let key = t.storage_key();
            let objs: Vec<Arc<Value>> = self
                .objects
                .get(&key)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            if let Some(storage) = self.registry.storage_type(&key) {
                for o in objs {
                    self.remove(&storage, o, tx);
                }
            }
            self.objects.remove(&key);
        }
        self.registry.remove_crd(&crd_name);
    }

    fn store_object(&mut self, rt: &ResourceType, old: Option<&Value>, obj: Arc<Value>) {
        let key = rt.storage_key();
        let ok = obj_key(&obj);
        let uid = meta::uid(&obj).to_string();
        self.by_uid.insert(uid, (key.clone(), ok.clone()));
        let old_owners = old.map(meta::owner_uids).unwrap_or_default();
        let new_owners = meta::owner_uids(&obj);
        for o in old_owners.iter().filter(|o| !new_owners.contains(o)) {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(&(key.clone(), ok.clone()));
            }
        }
        for o in new_owners {
            self.dependents.entry(o).or_default().insert((key.clone(), ok.clone()));
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let kinds = crd::crd_types(&obj);
            self.registry.set_crd(meta::name(&obj), kinds);
        }
        if rt.group == policy::GROUP && rt.plural == policy::POLICIES {
            // Admission accepted it, so it compiles: once here, not on every request it judges.
            match policy::compile::compile_policy(&obj) {
                Ok(p) => self.policies.insert(meta::name(&obj).to_string(), Arc::new(p)),
                Err(_) => self.policies.remove(meta::name(&obj)),
            };
        }
        self.objects.entry(key).or_default().insert(ok, obj);
    }

    fn emit(
        &mut self,
        rt: &ResourceType,
        type_: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
        tx: &broadcast::Sender<Arc<WatchEvent>>,
    ) {
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            key: rt.storage_key(),
            type_,
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
        // Nobody listening is fine.
        let _ = tx.send(event);
    }
}

/// Metadata rules every kind shares: names, label values.
fn check_metadata(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = meta::name(obj);
    let mut causes = Vec::new();
    if !meta::is_dns_subdomain(name) {
        causes.push(("metadata.name".to_string(), format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
    }
    if let Some(labels) = meta::labels(obj) {
        for (k, v) in labels {
            let ok = v.as_str().is_some_and(|s| {
                s.len() <= 63
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
            if !ok {
                causes.push((format!("metadata.labels.{k}"), format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&format!("{}.{}", rt.kind, rt.group), name, causes))
    }
}

/// Writes a watch event's object in the form the watcher asked for.
pub fn event_object(rt: &ResourceType, obj: &Value) -> Value {
    from_storage(rt, obj)
}

pub fn storage_form(rt: &ResourceType, obj: Value) -> Value {
    to_storage(rt, obj)
}

impl Store {
    /// Objects marked for deletion and still held by finalizers or contents.
    pub fn deleting_objects(&self) -> Vec<(Arc<ResourceType>, Arc<Value>)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (key, objects) in &inner.objects {
            let Some(rt) = inner.registry.storage_type(key) else {
                continue;
            };
            for obj in objects.values().filter(|o| meta::is_deleting(o)) {
                out.push((rt.clone(), obj.clone()));
            }
        }
        out
    }
}

impl<'a> Admission<'a> {
    fn of(operation: Operation, opts: &WriteOpts<'a>) -> Self {
        Admission {
            operation,
            subresource: opts.subresource.name(),
            caller: opts.caller,
            dry_run: opts.dry_run,
        }
    }
}

impl Inner {
    /// Runs the ValidatingAdmissionPolicies on a write (storage-form objects); their warnings
    /// go to the caller's answer.
    fn check_policies(
        &self,
        rt: &ResourceType,
        a: Admission,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ApiError> {
        let controllers = UserInfo::controller_manager();
        let user = a.caller.map_or(&controllers, |c| &c.user);
        let obj = new.or(old);
        let name = obj.map(meta::name).unwrap_or("");
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let namespace = if is_namespace {
            name
        } else {
            obj.map(meta::namespace).unwrap_or("")
        };
        let req = policy::Request {
            operation: a.operation,
            rt,
            subresource: a.subresource,
            namespace,
            name,
            object: new,
            old_object: old,
            user,
            dry_run: a.dry_run,
        };
        let warnings = policy::admit(self, &req)?;
        if let Some(c) = a.caller
            && !warnings.is_empty()
        {
            c.warnings.lock().unwrap_or_else(|e| e.into_inner()).extend(warnings);
        }
        Ok(())
    }

    fn stored(&self, group: &str, plural: &str) -> Option<&BTreeMap<ObjKey, Arc<Value>>> {
        self.objects.get(&StorageKey {
            group: group.to_string(),
            plural: plural.to_string(),
        })
    }
}

impl policy::Cluster for Inner {
    fn bindings(&self) -> Vec<Arc<Value>> {
        self.stored(policy::GROUP, policy::BINDINGS)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn policy(&self, name: &str) -> Option<Arc<policy::compile::CompiledPolicy>> {
        self.policies.get(name).cloned()
    }

    fn namespace(&self, name: &str) -> Option<Arc<Value>> {
        self.stored("", "namespaces")?
            .get(&(String::new(), name.to_string()))
            .cloned()
    }

    fn equivalents(&self, rt: &ResourceType) -> Vec<Arc<ResourceType>> {
        let key = rt.storage_key();
        self.registry
            .all()
            .iter()
            .filter(|t| t.storage_key() == key)
            .cloned()
            .collect()
    }

    fn type_by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.registry.by_kind(api_version, kind)
    }

    fn object(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Value> {
        Inner::get(self, rt, namespace, name).ok().map(|o| (*o).clone())
    }

    fn objects(&self, rt: &ResourceType, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .get(&rt.storage_key())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, o)| (**o).clone())
            .collect()
    }
}
