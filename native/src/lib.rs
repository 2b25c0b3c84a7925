//! Thin PyO3 binding of the Rust `automerge` crate.
//!
//! Types and errors cross the boundary; no logic lives here. Every Automerge error becomes a
//! typed Python exception, every panic is caught and turned into `AutomergeError`, and the GIL
//! is released around the expensive calls (load, save, apply, sync).
//!
//! Conventions on the Python side:
//! - object ids are strings (`"_root"`, `"5@<actor hex>"`), as Automerge prints them;
//! - change hashes and actor ids are `bytes`;
//! - text indexes count Unicode code points, like Python `str`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use automerge::{
    sync::{self, SyncDoc},
    transaction::{CommitOptions, Transactable},
    ActorId, AutoCommit, Automerge, Change, ChangeHash, Cursor, CursorPosition, LoadOptions, ObjId, ObjType, OnPartialLoad, Patch,
    PatchAction, Prop, ReadDoc, ScalarValue, TextEncoding, Value, VerificationMode,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

create_exception!(
    _automerge,
    AutomergeError,
    PyException,
    "Base class of every error raised by the Automerge binding."
);
create_exception!(
    _automerge,
    DecodeError,
    AutomergeError,
    "Bytes that are not a valid document, change, sync message or sync state."
);
create_exception!(
    _automerge,
    InvalidHash,
    AutomergeError,
    "A change hash that is malformed (not 32 bytes) or unknown to the document."
);
create_exception!(
    _automerge,
    InvalidObjectId,
    AutomergeError,
    "An object id that is malformed or names no object in the document."
);
create_exception!(
    _automerge,
    InvalidOperation,
    AutomergeError,
    "An edit or read that does not fit the target (index out of range, wrong object type, bad value)."
);

const TEXT_ENCODING: TextEncoding = TextEncoding::UnicodeCodePoint;

/// Rust's allocations (not Python's) go to mimalloc: Automerge's ops make many small ones (a
/// first change, two 32-byte actor ids per character: `legacy::OpId` owns its `ActorId`), on
/// which glibc's malloc spent a quarter of `first_change` (perf, 1,000 real files).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn am_err(e: automerge::AutomergeError) -> PyErr {
    use automerge::AutomergeError as E;
    let msg = e.to_string();
    match e {
        E::InvalidObjId(_) | E::InvalidObjIdFormat(_) | E::NotAnObject => InvalidObjectId::new_err(msg),
        E::Load(_) | E::LoadChangeError(_) | E::Deflate(_) | E::NonChangeCompressed | E::Unbundle(_) => {
            DecodeError::new_err(msg)
        }
        E::InvalidChangeHashBytes(_) | E::InvalidHash(_) | E::MissingHash(_) => InvalidHash::new_err(msg),
        E::InvalidIndex(_)
        | E::InvalidOp(_)
        | E::InvalidValueType { .. }
        | E::MissingCounter
        | E::InvalidCharacter(_)
        | E::InvalidSeq(_)
        | E::InvalidActorId(_)
        | E::DuplicateSeqNumber(..)
        | E::DuplicateActorId(_)
        | E::InvalidCursor(_)
        | E::InvalidCursorOp
        | E::InvalidCursorFormat => InvalidOperation::new_err(msg),
        E::MissingDeps => DecodeError::new_err(msg),
        E::ChangeGraph(_) => InvalidHash::new_err(msg),
        _ => AutomergeError::new_err(msg),
    }
}

/// Run `f`, turning a Rust panic into `AutomergeError` so no input can abort the interpreter.
fn guard<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(AutomergeError::new_err(format!("automerge panicked during {what}: {detail}")))
        }
    }
}

fn hash_from(bytes: &[u8]) -> PyResult<ChangeHash> {
    ChangeHash::try_from(bytes).map_err(|_| {
        InvalidHash::new_err(format!("a change hash is 32 bytes, got {} bytes", bytes.len()))
    })
}

/// A heads argument: any sequence (list, tuple) of 32-byte hashes. A lone `bytes` or `str` is
/// refused rather than iterated, since iterating it would yield ints or characters.
#[derive(Default)]
struct Heads(Vec<ChangeHash>);

impl<'py> FromPyObject<'py> for Heads {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        let not_a_list = || {
            let name = ob.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            InvalidHash::new_err(format!("heads are a list of 32-byte hashes, got {name}"))
        };
        if ob.is_instance_of::<PyBytes>() || ob.is_instance_of::<PyString>() {
            return Err(not_a_list());
        }
        let mut heads = Vec::new();
        for item in ob.try_iter().map_err(|_| not_a_list())? {
            let item = item?;
            let bytes = item.downcast::<PyBytes>().map_err(|_| {
                let name = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
                InvalidHash::new_err(format!("a change hash is 32 bytes, got {name}"))
            })?;
            heads.push(hash_from(bytes.as_bytes())?);
        }
        Ok(Heads(heads))
    }
}

fn hashes_to_py<'py>(py: Python<'py>, hashes: &[ChangeHash]) -> Vec<Bound<'py, PyBytes>> {
    hashes.iter().map(|h| PyBytes::new(py, &h.0)).collect()
}

fn actor_from(bytes: &[u8]) -> PyResult<ActorId> {
    if bytes.is_empty() {
        return Err(InvalidOperation::new_err("an actor id must not be empty"));
    }
    Ok(ActorId::from(bytes))
}

fn obj_type_from(kind: &str) -> PyResult<ObjType> {
    match kind {
        "map" => Ok(ObjType::Map),
        "list" => Ok(ObjType::List),
        "text" => Ok(ObjType::Text),
        other => Err(InvalidOperation::new_err(format!(
            "unknown object kind {other:?}: expected 'map', 'list' or 'text'"
        ))),
    }
}

fn obj_type_name(kind: ObjType) -> &'static str {
    match kind {
        ObjType::Map | ObjType::Table => "map",
        ObjType::List => "list",
        ObjType::Text => "text",
    }
}

fn scalar_from(value: &Bound<'_, PyAny>) -> PyResult<ScalarValue> {
    if value.is_none() {
        Ok(ScalarValue::Null)
    } else if value.is_instance_of::<PyBool>() {
        Ok(ScalarValue::Boolean(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            Ok(ScalarValue::Int(i))
        } else if let Ok(u) = value.extract::<u64>() {
            Ok(ScalarValue::Uint(u))
        } else {
            Err(InvalidOperation::new_err("integer out of the 64-bit range Automerge can store"))
        }
    } else if value.is_instance_of::<PyFloat>() {
        Ok(ScalarValue::F64(value.extract()?))
    } else if value.is_instance_of::<PyString>() {
        Ok(ScalarValue::Str(value.extract::<String>()?.into()))
    } else if let Ok(b) = value.downcast::<PyBytes>() {
        Ok(ScalarValue::Bytes(b.as_bytes().to_vec()))
    } else {
        Err(InvalidOperation::new_err(format!(
            "cannot store a value of type {}: use None, bool, int, float, str or bytes",
            value.get_type().name()?
        )))
    }
}

fn scalar_to_py(py: Python<'_>, value: &ScalarValue) -> PyResult<PyObject> {
    Ok(match value {
        ScalarValue::Null => py.None(),
        ScalarValue::Boolean(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => i.into_pyobject(py)?.into_any().unbind(),
        ScalarValue::Counter(c) => i64::from(c).into_pyobject(py)?.into_any().unbind(),
        ScalarValue::Uint(u) => u.into_pyobject(py)?.into_any().unbind(),
        ScalarValue::F64(f) => f.into_pyobject(py)?.into_any().unbind(),
        ScalarValue::Str(s) => PyString::new(py, s).into_any().unbind(),
        ScalarValue::Bytes(b) => PyBytes::new(py, b).into_any().unbind(),
        ScalarValue::Unknown { bytes, .. } => PyBytes::new(py, bytes).into_any().unbind(),
    })
}

fn value_to_py(py: Python<'_>, value: &Value<'_>, id: &ObjId) -> PyResult<PyObject> {
    match value {
        Value::Object(kind) => Ok(ObjectRef { kind: obj_type_name(*kind), id: id.to_string() }
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Value::Scalar(s) => scalar_to_py(py, s),
    }
}

/// A list/text position: a non-negative int (not a bool); anything else is `InvalidOperation`.
fn index_from(index: &Bound<'_, PyAny>) -> PyResult<usize> {
    if !index.is_instance_of::<PyInt>() || index.is_instance_of::<PyBool>() {
        return Err(InvalidOperation::new_err("a list/text index is a non-negative int"));
    }
    let index: i128 = index
        .extract()
        .map_err(|_| InvalidOperation::new_err("list/text index out of range"))?;
    usize::try_from(index).map_err(|_| {
        if index < 0 {
            InvalidOperation::new_err(format!("list/text index {index} is negative"))
        } else {
            InvalidOperation::new_err(format!("list/text index {index} is out of range"))
        }
    })
}

fn prop_from(key: &Bound<'_, PyAny>) -> PyResult<Prop> {
    if key.is_instance_of::<PyString>() {
        Ok(Prop::Map(key.extract()?))
    } else if key.is_instance_of::<PyInt>() && !key.is_instance_of::<PyBool>() {
        index_from(key).map(Prop::Seq)
    } else {
        Err(InvalidOperation::new_err("a key is a str (map) or a non-negative int (list/text)"))
    }
}

fn prop_to_py(py: Python<'_>, prop: &Prop) -> PyResult<PyObject> {
    Ok(match prop {
        Prop::Map(k) => PyString::new(py, k).into_any().unbind(),
        Prop::Seq(i) => i.into_pyobject(py)?.into_any().unbind(),
    })
}

fn commit_options(message: Option<String>, time: Option<i64>) -> CommitOptions {
    let mut options = CommitOptions::default();
    if let Some(m) = message {
        options = options.with_message(m);
    }
    if let Some(t) = time {
        options = options.with_time(t);
    }
    options
}

/// A reference to a nested object (map, list or text) found inside a document.
#[pyclass(module = "native._automerge", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
struct ObjectRef {
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    id: String,
}

#[pymethods]
impl ObjectRef {
    fn __repr__(&self) -> String {
        format!("ObjectRef(kind={:?}, id={:?})", self.kind, self.id)
    }
}

/// A decoded Automerge change: who wrote it, what it depends on, and its raw bytes.
#[pyclass(module = "native._automerge", frozen)]
struct DecodedChange {
    #[pyo3(get)]
    hash: Py<PyBytes>,
    #[pyo3(get)]
    actor: Py<PyBytes>,
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    start_op: u64,
    #[pyo3(get)]
    deps: Vec<Py<PyBytes>>,
    #[pyo3(get)]
    time: i64,
    #[pyo3(get)]
    message: Option<String>,
    #[pyo3(get)]
    op_count: usize,
    #[pyo3(get)]
    raw: Py<PyBytes>,
}

#[pymethods]
impl DecodedChange {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "DecodedChange(hash={}, actor={}, seq={}, ops={}, message={:?})",
            hex(self.hash.as_bytes(py)),
            hex(self.actor.as_bytes(py)),
            self.seq,
            self.op_count,
            self.message.as_deref().unwrap_or("")
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decoded_change(py: Python<'_>, change: &Change) -> DecodedChange {
    DecodedChange {
        hash: PyBytes::new(py, &change.hash().0).unbind(),
        actor: PyBytes::new(py, change.actor_id().to_bytes()).unbind(),
        seq: change.seq(),
        start_op: change.start_op().get(),
        deps: change.deps().iter().map(|d| PyBytes::new(py, &d.0).unbind()).collect(),
        time: change.timestamp(),
        message: change.message().cloned(),
        op_count: change.len(),
        raw: PyBytes::new(py, change.raw_bytes()).unbind(),
    }
}

/// Decode one change. `Change::from_bytes` does not check the header checksum (the first four
/// bytes of the hash, as `load` checks them), so a corrupted change would otherwise be accepted
/// under a new hash.
fn change_from(bytes: Vec<u8>) -> PyResult<Change> {
    guard("change decoding", || {
        let checksum = bytes.get(4..8).map(<[u8]>::to_vec);
        let change =
            Change::from_bytes(bytes).map_err(|e| DecodeError::new_err(format!("invalid change: {e}")))?;
        if checksum.as_deref() != Some(&change.hash().0[..4]) {
            return Err(DecodeError::new_err("invalid change: checksum does not match its contents"));
        }
        Ok(change)
    })
}

/// Decode one change from its bytes, verifying its checksum.
#[pyfunction]
fn decode_change(py: Python<'_>, data: &[u8]) -> PyResult<DecodedChange> {
    let change = change_from(data.to_vec())?;
    Ok(decoded_change(py, &change))
}

/// What a new file's first change puts under its key of the root: a text object holding a
/// string (one insert op per code point), or a bytes value.
enum Content {
    Text(String),
    Bytes(Vec<u8>),
}

/// The first change of a new document, as `Document(actor)` + `put_object(ROOT, key, "text")` +
/// `splice_text(.., 0, 0, text)` (or `put(ROOT, key, data)` for bytes) + `commit(message, time)`
/// would make it, byte for byte, without building the document: Automerge's own change encoder
/// (`Change::from(ExpandedChange)`) over the same ops. `commit` encodes the change too, then
/// drops it, and reading it back (`get_changes`) re-collects it from the op set; a new file's
/// content costs about a third of the three, in a call that touches no Python object and
/// releases the GIL, so a batch of them builds on several threads.
#[pyfunction]
#[pyo3(signature = (actor, key, content, message=None, time=None))]
fn first_change(
    py: Python<'_>,
    actor: &[u8],
    key: &str,
    content: &Bound<'_, PyAny>,
    message: Option<String>,
    time: Option<i64>,
) -> PyResult<DecodedChange> {
    use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType, SortedVec};
    let actor = actor_from(actor)?;
    let content = if let Ok(b) = content.downcast::<PyBytes>() {
        Content::Bytes(b.as_bytes().to_vec())
    } else if content.is_instance_of::<PyString>() {
        Content::Text(content.extract::<String>()?)
    } else {
        return Err(InvalidOperation::new_err("a first change's content is str (a text object) or bytes"));
    };
    let key = key.to_string();
    let change = py.allow_threads(|| {
        guard("first_change", || {
            let ops = match content {
                Content::Bytes(data) => vec![Op {
                    action: OpType::Put(ScalarValue::Bytes(data)),
                    obj: ObjectId::Root,
                    key: Key::Map(key.into()),
                    pred: SortedVec::new(),
                    insert: false,
                }],
                Content::Text(text) => {
                    let mut ops = Vec::with_capacity(text.len() + 1);
                    ops.push(Op {
                        action: OpType::Make(ObjType::Text),
                        obj: ObjectId::Root,
                        key: Key::Map(key.into()),
                        pred: SortedVec::new(),
                        insert: false,
                    });
                    let text_obj = ObjectId::Id(OpId(1, actor.clone()));
                    let mut after = ElementId::Head;
                    let mut utf8 = [0u8; 4];
                    for (counter, ch) in (2u64..).zip(text.chars()) {
                        ops.push(Op {
                            action: OpType::Put(ScalarValue::Str(smol_str::SmolStr::new_inline(ch.encode_utf8(&mut utf8)))),
                            obj: text_obj.clone(),
                            key: Key::Seq(after),
                            pred: SortedVec::new(),
                            insert: true,
                        });
                        after = ElementId::Id(OpId(counter, actor.clone()));
                    }
                    ops
                }
            };
            Ok(Change::from(automerge::ExpandedChange {
                operations: ops,
                actor_id: actor,
                hash: None,
                seq: 1,
                start_op: std::num::NonZeroU64::MIN,
                time: time.unwrap_or(0),
                message,
                deps: vec![],
                extra_bytes: vec![],
            }))
        })
    })?;
    Ok(decoded_change(py, &change))
}

/// A decoded sync message: the sender's heads, the hashes it needs, and the change chunks.
#[pyclass(module = "native._automerge", frozen)]
struct SyncMessage {
    #[pyo3(get)]
    heads: Vec<Py<PyBytes>>,
    #[pyo3(get)]
    need: Vec<Py<PyBytes>>,
    #[pyo3(get)]
    have_count: usize,
    /// Each chunk is either one change or (v2 messages) a saved document; `Document.load` reads both.
    #[pyo3(get)]
    changes: Vec<Py<PyBytes>>,
}

/// Decode a sync message produced by `Document.generate_sync_message`.
#[pyfunction]
fn decode_sync_message(py: Python<'_>, data: &[u8]) -> PyResult<SyncMessage> {
    let message = guard("sync message decoding", || {
        sync::Message::decode(data).map_err(|e| DecodeError::new_err(format!("invalid sync message: {e}")))
    })?;
    Ok(SyncMessage {
        heads: message.heads.iter().map(|h| PyBytes::new(py, &h.0).unbind()).collect(),
        need: message.need.iter().map(|h| PyBytes::new(py, &h.0).unbind()).collect(),
        have_count: message.have.len(),
        changes: message.changes.iter().map(|c| PyBytes::new(py, c).unbind()).collect(),
    })
}

/// Per-peer state of Automerge's sync protocol; `encode` keeps what survives a reconnect.
#[pyclass(module = "native._automerge")]
struct SyncState {
    state: sync::State,
}

#[pymethods]
impl SyncState {
    #[new]
    fn new() -> Self {
        SyncState { state: sync::State::new() }
    }

    /// Bytes to persist: only the shared heads, as Automerge intends.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.state.encode())
    }

    #[staticmethod]
    fn decode(data: &[u8]) -> PyResult<Self> {
        let state = guard("sync state decoding", || {
            sync::State::decode(data).map_err(|e| DecodeError::new_err(format!("invalid sync state: {e}")))
        })?;
        Ok(SyncState { state })
    }

    #[getter]
    fn shared_heads<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        hashes_to_py(py, &self.state.shared_heads)
    }

    #[getter]
    fn their_heads<'py>(&self, py: Python<'py>) -> Option<Vec<Bound<'py, PyBytes>>> {
        self.state.their_heads.as_ref().map(|h| hashes_to_py(py, h))
    }
}

/// One Automerge document, with its own actor id. Not thread-safe: share it through one owner.
#[pyclass(module = "native._automerge")]
struct Document {
    doc: AutoCommit,
}

impl Document {
    fn obj(&self, id: &str) -> PyResult<ObjId> {
        if id != "_root" {
            let (counter, actor) = id
                .split_once('@')
                .ok_or_else(|| InvalidObjectId::new_err(format!("malformed object id {id:?}")))?;
            let well_formed = counter.parse::<u64>().is_ok()
                && !actor.is_empty()
                && actor.len() % 2 == 0
                && actor.bytes().all(|b| b.is_ascii_hexdigit());
            if !well_formed {
                return Err(InvalidObjectId::new_err(format!("malformed object id {id:?}")));
            }
        }
        self.doc.import(id).map(|(obj, _)| obj).map_err(|_| {
            InvalidObjectId::new_err(format!("no object {id:?} in this document"))
        })
    }

    /// The hashes of `heads`, each checked to be a change this document holds: Automerge reads
    /// "at heads" skip unknown hashes, which would silently answer for a different state.
    /// Uses `ReadDoc` (`&self`) so a pending transaction is not committed by a read.
    fn known(&self, Heads(heads): Heads) -> PyResult<Vec<ChangeHash>> {
        guard("heads lookup", || {
            let missing = ReadDoc::get_missing_deps(&self.doc, &heads);
            // A queued change (deps missing) is not reported missing; the queue is non-empty
            // only when some dependency is missing, so only then pay for the exact lookup.
            let queued = !ReadDoc::get_missing_deps(&self.doc, &[]).is_empty();
            for h in &heads {
                if missing.contains(h) || (queued && ReadDoc::get_change_by_hash(&self.doc, h).is_none()) {
                    return Err(InvalidHash::new_err(format!("unknown change hash {h}")));
                }
            }
            Ok(heads)
        })
    }

    fn known_opt(&self, heads: Option<Heads>) -> PyResult<Option<Vec<ChangeHash>>> {
        heads.map(|h| self.known(h)).transpose()
    }

    /// Run an edit, then `settle`: every method that can open, close or roll back a transaction
    /// goes through here.
    fn edit<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, automerge::AutomergeError>,
    ) -> PyResult<T> {
        let result = guard(what, || f(&mut self.doc).map_err(am_err));
        self.settle()?;
        result
    }

    /// Close an empty transaction right away and start a fresh (inactive) patch log.
    ///
    /// Automerge 0.7.4 removes a new actor again when its first transaction ends with no
    /// operations (empty commit, rollback, a failed or no-op edit), but the `AutoCommit` patch
    /// log keeps it; the next change from an actor that sorts after it then panics
    /// (`PatchLogMismatch`) inside apply/sync. We never use the patch log (diffs are computed
    /// from heads), so replacing it is free and keeps the two actor tables in step.
    fn settle(&mut self) -> PyResult<()> {
        if self.doc.pending_ops() == 0 {
            let doc = &mut self.doc;
            guard("settle", || {
                doc.reset_diff_cursor();
                Ok(())
            })?;
        }
        Ok(())
    }

    /// `obj`, checked to be of `kind` (for reads only one kind answers sensibly).
    fn obj_of(&self, id: &str, kind: ObjType) -> PyResult<ObjId> {
        let obj = self.obj(id)?;
        let actual = self.doc.object_type(&obj).map_err(am_err)?;
        if obj_type_name(actual) != obj_type_name(kind) {
            return Err(InvalidOperation::new_err(format!(
                "object {id:?} is a {}, not a {}",
                obj_type_name(actual),
                obj_type_name(kind)
            )));
        }
        Ok(obj)
    }

    fn hydrate_obj(&self, py: Python<'_>, obj: &ObjId, heads: Option<&[ChangeHash]>) -> PyResult<PyObject> {
        let kind = self.doc.object_type(obj).map_err(am_err)?;
        match kind {
            ObjType::Text => {
                let text = match heads {
                    Some(h) => self.doc.text_at(obj, h),
                    None => self.doc.text(obj),
                }
                .map_err(am_err)?;
                Ok(PyString::new(py, &text).into_any().unbind())
            }
            ObjType::Map | ObjType::Table => {
                let dict = PyDict::new(py);
                let keys: Vec<String> = match heads {
                    Some(h) => self.doc.keys_at(obj, h).collect(),
                    None => self.doc.keys(obj).collect(),
                };
                for key in keys {
                    if let Some(value) = self.read(py, obj, Prop::Map(key.clone()), heads)? {
                        dict.set_item(key, value)?;
                    }
                }
                Ok(dict.into_any().unbind())
            }
            ObjType::List => {
                let length = match heads {
                    Some(h) => self.doc.length_at(obj, h),
                    None => self.doc.length(obj),
                };
                let list = PyList::empty(py);
                for index in 0..length {
                    if let Some(value) = self.read(py, obj, Prop::Seq(index), heads)? {
                        list.append(value)?;
                    }
                }
                Ok(list.into_any().unbind())
            }
        }
    }

    fn read(&self, py: Python<'_>, obj: &ObjId, prop: Prop, heads: Option<&[ChangeHash]>) -> PyResult<Option<PyObject>> {
        let found = match heads {
            Some(h) => self.doc.get_at(obj, prop, h),
            None => self.doc.get(obj, prop),
        }
        .map_err(am_err)?;
        match found {
            None => Ok(None),
            Some((Value::Object(_), id)) => Ok(Some(self.hydrate_obj(py, &id, heads)?)),
            Some((value, id)) => Ok(Some(value_to_py(py, &value, &id)?)),
        }
    }
}

fn new_doc(actor: Option<&[u8]>) -> PyResult<AutoCommit> {
    let doc = AutoCommit::new_with_encoding(TEXT_ENCODING);
    Ok(match actor {
        Some(a) => doc.with_actor(actor_from(a)?),
        None => doc,
    })
}

#[pymethods]
impl Document {
    /// A new empty document; `actor` (bytes) is the author id stamped on every change.
    #[new]
    #[pyo3(signature = (actor=None))]
    fn new(actor: Option<&[u8]>) -> PyResult<Self> {
        Ok(Document { doc: new_doc(actor)? })
    }

    /// Load a document saved by `save` (or any concatenation of saved chunks and changes).
    #[staticmethod]
    #[pyo3(signature = (data, actor=None))]
    fn load(py: Python<'_>, data: &[u8], actor: Option<&[u8]>) -> PyResult<Self> {
        let actor = actor.map(actor_from).transpose()?;
        let doc = py.allow_threads(|| {
            guard("load", || {
                AutoCommit::load_with_options(data, LoadOptions::new().text_encoding(TEXT_ENCODING))
                    .map_err(|e| DecodeError::new_err(format!("cannot load document: {e}")))
            })
        })?;
        Ok(Document { doc: match actor { Some(a) => doc.with_actor(a), None => doc } })
    }

    #[getter]
    fn actor<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.doc.get_actor().to_bytes())
    }

    /// Author later changes as `actor` (pending operations are committed as the old actor first).
    fn set_actor(&mut self, actor: &[u8]) -> PyResult<()> {
        let actor = actor_from(actor)?;
        self.edit("set_actor", |doc| {
            doc.set_actor(actor);
            Ok(())
        })
    }

    fn save<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let doc = &mut self.doc;
        let bytes = py.allow_threads(|| guard("save", || Ok(doc.save())))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The changes since the previous `save`/`save_incremental`, as bytes `load_incremental` reads.
    fn save_incremental<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let doc = &mut self.doc;
        let bytes = py.allow_threads(|| guard("save", || Ok(doc.save_incremental())))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The changes not reachable from `heads`, encoded as by `save_incremental`.
    fn save_after<'py>(&mut self, py: Python<'py>, heads: Heads) -> PyResult<Bound<'py, PyBytes>> {
        let Heads(heads) = heads;
        let doc = &mut self.doc;
        let bytes = py.allow_threads(|| guard("save", || Ok(doc.save_after(&heads))))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Apply saved or incremental bytes; returns the number of new operations.
    /// Automerge's `load_incremental` keeps the chunks before a bad one and drops the rest
    /// silently, so the bytes are first parsed in full into a scratch document: bad bytes raise
    /// `DecodeError` and change nothing.
    fn load_incremental(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        let doc = &mut self.doc;
        py.allow_threads(|| {
            guard("load", || {
                let strict = LoadOptions::new()
                    .on_partial_load(OnPartialLoad::Error)
                    .verification_mode(VerificationMode::DontCheck)
                    .text_encoding(TEXT_ENCODING);
                match Automerge::load_with_options(data, strict) {
                    // changes whose deps the scratch document lacks: parsed fine, only unapplied
                    Ok(_) | Err(automerge::AutomergeError::MissingDeps) => {}
                    Err(e) => return Err(DecodeError::new_err(format!("cannot load changes: {e}"))),
                }
                doc.load_incremental(data).map_err(am_err)
            })
        })
    }

    #[pyo3(signature = (actor=None))]
    fn fork(&mut self, actor: Option<&[u8]>) -> PyResult<Self> {
        let actor = actor.map(actor_from).transpose()?;
        let mut forked = guard("fork", || Ok(self.doc.fork()))?;
        if let Some(a) = actor {
            forked.set_actor(a);
        }
        Ok(Document { doc: forked })
    }

    /// A copy of the document as it was at `heads`.
    #[pyo3(signature = (heads, actor=None))]
    fn fork_at(&mut self, heads: Heads, actor: Option<&[u8]>) -> PyResult<Self> {
        let heads = self.known(heads)?;
        let actor = actor.map(actor_from).transpose()?;
        let mut forked = guard("fork", || self.doc.fork_at(&heads).map_err(am_err))?;
        if let Some(a) = actor {
            forked.set_actor(a);
        }
        Ok(Document { doc: forked })
    }

    fn heads<'py>(&mut self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        hashes_to_py(py, &self.doc.get_heads())
    }

    /// Read and edit the document as it was at `heads` (Automerge's isolation), until
    /// `integrate`: reads without `heads` and `heads()` show that state, and the next change
    /// committed has exactly `heads` as its deps (it then becomes the isolated state). Changes
    /// applied meanwhile are kept but not seen. Pending operations are committed first.
    ///
    /// If this actor has changes `heads` does not cover, Automerge authors the isolated change
    /// under a derived actor id (an actor's changes must form a chain): include its newest
    /// change in `heads` to keep the actor.
    fn isolate(&mut self, heads: Heads) -> PyResult<()> {
        let heads = self.known(heads)?;
        self.edit("isolate", |doc| {
            doc.isolate(&heads);
            Ok(())
        })
    }

    /// End an isolation: back to the document with every change (a no-op when not isolated).
    /// Pending operations are committed first.
    fn integrate(&mut self) -> PyResult<()> {
        self.edit("integrate", |doc| {
            doc.integrate();
            Ok(())
        })
    }

    // ----- edits -----

    fn put(&mut self, obj: &str, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let obj = self.obj(obj)?;
        let (prop, value) = (prop_from(key)?, scalar_from(value)?);
        self.edit("put", |doc| doc.put(&obj, prop, value))
    }

    /// Create a nested map, list or text under `key`; returns its object id.
    fn put_object(&mut self, obj: &str, key: &Bound<'_, PyAny>, kind: &str) -> PyResult<String> {
        let obj = self.obj(obj)?;
        let (prop, kind) = (prop_from(key)?, obj_type_from(kind)?);
        self.edit("put_object", |doc| doc.put_object(&obj, prop, kind).map(|id| id.to_string()))
    }

    fn insert(&mut self, obj: &str, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let obj = self.obj(obj)?;
        let (index, value) = (index_from(index)?, scalar_from(value)?);
        self.edit("insert", |doc| doc.insert(&obj, index, value))
    }

    fn insert_object(&mut self, obj: &str, index: &Bound<'_, PyAny>, kind: &str) -> PyResult<String> {
        let obj = self.obj(obj)?;
        let (index, kind) = (index_from(index)?, obj_type_from(kind)?);
        self.edit("insert_object", |doc| doc.insert_object(&obj, index, kind).map(|id| id.to_string()))
    }

    /// Delete a map key (absent keys are fine) or a list/text element.
    fn delete(&mut self, obj: &str, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let obj = self.obj(obj)?;
        let prop = prop_from(key)?;
        // Automerge treats a map key on a list as a delete of nothing; put/get refuse it.
        let kind = self.doc.object_type(&obj).map_err(am_err)?;
        if matches!((&prop, kind), (Prop::Map(_), ObjType::List | ObjType::Text)) {
            return Err(am_err(automerge::AutomergeError::InvalidOp(kind)));
        }
        self.edit("delete", |doc| doc.delete(&obj, prop))
    }

    /// Delete `delete` code points at `pos` and insert `text` there (a negative `delete`
    /// removes code points before `pos`, as in Automerge).
    #[pyo3(signature = (obj, pos, delete, text=""))]
    fn splice_text(&mut self, obj: &str, pos: &Bound<'_, PyAny>, delete: &Bound<'_, PyAny>, text: &str) -> PyResult<()> {
        let obj = self.obj(obj)?;
        let pos = index_from(pos)?;
        let delete = if delete.is_instance_of::<PyInt>() && !delete.is_instance_of::<PyBool>() {
            delete.extract::<isize>().ok()
        } else {
            None
        }
        .filter(|d| *d != isize::MIN)
        .ok_or_else(|| InvalidOperation::new_err("the delete count is an int within the text's length"))?;
        self.edit("splice_text", |doc| doc.splice_text(&obj, pos, delete, text))
    }

    /// Replace the whole text with `text`, as the smallest set of splices Automerge finds.
    fn update_text(&mut self, obj: &str, text: &str) -> PyResult<()> {
        let obj = self.obj(obj)?;
        self.edit("update_text", |doc| doc.update_text(&obj, text))
    }

    /// Close the pending transaction as one change; returns its hash, or None if it was empty.
    #[pyo3(signature = (message=None, time=None))]
    fn commit<'py>(&mut self, py: Python<'py>, message: Option<String>, time: Option<i64>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let hash = self.edit("commit", |doc| Ok(doc.commit_with(commit_options(message, time))))?;
        Ok(hash.map(|h| PyBytes::new(py, &h.0)))
    }

    /// A change with no operations whose deps are every current head (a merge commit).
    #[pyo3(signature = (message=None, time=None))]
    fn empty_change<'py>(&mut self, py: Python<'py>, message: Option<String>, time: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let hash = self.edit("empty_change", |doc| Ok(doc.empty_change(commit_options(message, time))))?;
        Ok(PyBytes::new(py, &hash.0))
    }

    /// Drop the uncommitted operations; returns how many were dropped.
    fn rollback(&mut self) -> PyResult<usize> {
        self.edit("rollback", |doc| Ok(doc.rollback()))
    }

    fn pending_ops(&self) -> usize {
        self.doc.pending_ops()
    }

    // ----- reads (current state, or at `heads`) -----

    /// The scalar value or `ObjectRef` under `key`, or None.
    #[pyo3(signature = (obj, key, heads=None))]
    fn get(&self, py: Python<'_>, obj: &str, key: &Bound<'_, PyAny>, heads: Option<Heads>) -> PyResult<Option<PyObject>> {
        let obj = self.obj(obj)?;
        let (prop, heads) = (prop_from(key)?, self.known_opt(heads)?);
        let found = guard("get", || {
            match &heads {
                Some(h) => self.doc.get_at(&obj, prop, h),
                None => self.doc.get(&obj, prop),
            }
            .map_err(am_err)
        })?;
        found.map(|(value, id)| value_to_py(py, &value, &id)).transpose()
    }

    /// Every concurrent value under `key` (conflicts), winner last as Automerge orders them.
    #[pyo3(signature = (obj, key, heads=None))]
    fn get_all(&self, py: Python<'_>, obj: &str, key: &Bound<'_, PyAny>, heads: Option<Heads>) -> PyResult<Vec<PyObject>> {
        let obj = self.obj(obj)?;
        let (prop, heads) = (prop_from(key)?, self.known_opt(heads)?);
        let found = guard("get_all", || {
            match &heads {
                Some(h) => self.doc.get_all_at(&obj, prop, h),
                None => self.doc.get_all(&obj, prop),
            }
            .map_err(am_err)
        })?;
        found.iter().map(|(value, id)| value_to_py(py, value, id)).collect()
    }

    /// The keys of a map (a list or text has positions, not keys: `InvalidOperation`).
    #[pyo3(signature = (obj, heads=None))]
    fn keys(&self, obj: &str, heads: Option<Heads>) -> PyResult<Vec<String>> {
        let obj = self.obj_of(obj, ObjType::Map)?;
        let heads = self.known_opt(heads)?;
        guard("keys", || {
            Ok(match &heads {
                Some(h) => self.doc.keys_at(&obj, h).collect(),
                None => self.doc.keys(&obj).collect(),
            })
        })
    }

    #[pyo3(signature = (obj, heads=None))]
    fn length(&self, obj: &str, heads: Option<Heads>) -> PyResult<usize> {
        let obj = self.obj(obj)?;
        let heads = self.known_opt(heads)?;
        guard("length", || {
            Ok(match &heads {
                Some(h) => self.doc.length_at(&obj, h),
                None => self.doc.length(&obj),
            })
        })
    }

    fn object_type(&self, obj: &str) -> PyResult<&'static str> {
        let obj = self.obj(obj)?;
        self.doc.object_type(&obj).map(obj_type_name).map_err(am_err)
    }

    /// The content of a text object (any other kind: `InvalidOperation`).
    #[pyo3(signature = (obj, heads=None))]
    fn text(&self, py: Python<'_>, obj: &str, heads: Option<Heads>) -> PyResult<String> {
        let obj = self.obj_of(obj, ObjType::Text)?;
        let heads = self.known_opt(heads)?;
        let doc = &self.doc;
        py.allow_threads(|| {
            guard("text", || {
                match &heads {
                    Some(h) => doc.text_at(&obj, h),
                    None => doc.text(&obj),
                }
                .map_err(am_err)
            })
        })
    }

    /// The object as plain Python values (dict, list, str, scalars), now or at `heads`.
    #[pyo3(signature = (obj="_root", heads=None))]
    fn hydrate(&self, py: Python<'_>, obj: &str, heads: Option<Heads>) -> PyResult<PyObject> {
        let obj = self.obj(obj)?;
        let heads = self.known_opt(heads)?;
        guard("hydrate", || self.hydrate_obj(py, &obj, heads.as_deref()))
    }

    /// A stable address of the element at `position` of a sequence (the text at `heads`, or
    /// now): Automerge's cursor as its string form (`"<counter>@<actor hex>"`), which
    /// `get_cursor_position` resolves at any later version, following that character. The
    /// position just past the end is `"e"`, Automerge's cursor that always resolves to the end.
    #[pyo3(signature = (obj, position, heads=None))]
    fn get_cursor(&self, obj: &str, position: usize, heads: Option<Heads>) -> PyResult<String> {
        let obj = self.obj(obj)?;
        let heads = self.known_opt(heads)?;
        guard("get_cursor", || {
            let length = match &heads {
                Some(h) => self.doc.length_at(&obj, h),
                None => self.doc.length(&obj),
            };
            let at = if position == length { CursorPosition::End } else { CursorPosition::Index(position) };
            Ok(self.doc.get_cursor(&obj, at, heads.as_deref()).map_err(am_err)?.to_string())
        })
    }

    /// Where a cursor of `get_cursor` is in the sequence at `heads` (or now). A deleted element's
    /// cursor resolves to the element after it (Automerge's `MoveCursor::After`). A malformed
    /// cursor, or one naming an element this document does not hold (at `heads`):
    /// `InvalidOperation`.
    #[pyo3(signature = (obj, cursor, heads=None))]
    fn get_cursor_position(&self, obj: &str, cursor: &str, heads: Option<Heads>) -> PyResult<usize> {
        let obj = self.obj(obj)?;
        let heads = self.known_opt(heads)?;
        guard("get_cursor_position", || {
            // Automerge slices the string by bytes: a non-ASCII or empty one would panic there.
            if cursor.is_empty() || !cursor.is_ascii() {
                return Err(InvalidOperation::new_err(format!("malformed cursor {cursor:?}")));
            }
            let cursor = Cursor::try_from(cursor).map_err(am_err)?;
            self.doc.get_cursor_position(&obj, &cursor, heads.as_deref()).map_err(am_err)
        })
    }

    /// Patches that turn the state at `before` into the state at `after`. A scan of the whole
    /// document, unless `before` is the diff cursor and `after` the current heads.
    fn diff(&mut self, py: Python<'_>, before: Heads, after: Heads) -> PyResult<Vec<PyObject>> {
        let (before, after) = (self.known(before)?, self.known(after)?);
        let patches = guard("diff", || Ok(self.doc.diff(&before, &after)))?;
        patches.iter().map(|p| patch_to_py(py, p)).collect()
    }

    /// Put the diff cursor at the current heads (closing any pending ops as a change, as reads
    /// of heads do). From then on every change is logged, and `diff(diff_cursor(), heads())`
    /// takes time in proportion to the changes since, not to the document.
    fn update_diff_cursor(&mut self) -> PyResult<()> {
        guard("update_diff_cursor", || Ok(self.doc.update_diff_cursor()))
    }

    /// The heads of the last `update_diff_cursor` (empty if never called).
    fn diff_cursor<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        hashes_to_py(py, &self.doc.diff_cursor())
    }

    // ----- changes -----

    /// Every change not reachable from `since` (all changes for an empty list), in causal order.
    /// Hashes this document lacks are ignored, as in Automerge: a peer's heads may be unknown.
    #[pyo3(signature = (since=Heads::default()))]
    fn get_changes<'py>(&mut self, py: Python<'py>, since: Heads) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let Heads(since) = since;
        let doc = &mut self.doc;
        let changes = py.allow_threads(|| {
            guard("get_changes", || Ok(doc.get_changes(&since).into_iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>()))
        })?;
        Ok(changes.iter().map(|c| PyBytes::new(py, c)).collect())
    }

    /// `get_changes`, each decoded as `decode_change` would: a commit reads back the changes it
    /// just made, and parsing their bytes again cost as much as a third of building them.
    #[pyo3(signature = (since=Heads::default()))]
    fn get_changes_decoded(&mut self, py: Python<'_>, since: Heads) -> PyResult<Vec<DecodedChange>> {
        let Heads(since) = since;
        let doc = &mut self.doc;
        let changes = py.allow_threads(|| guard("get_changes", || Ok(doc.get_changes(&since))))?;
        Ok(changes.iter().map(|change| decoded_change(py, change)).collect())
    }

    fn get_change_by_hash<'py>(&mut self, py: Python<'py>, hash: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let hash = hash_from(hash)?;
        Ok(self.doc.get_change_by_hash(&hash).map(|c| PyBytes::new(py, c.raw_bytes())))
    }

    fn get_last_local_change<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.doc.get_last_local_change().map(|c| PyBytes::new(py, c.raw_bytes()))
    }

    /// Apply changes (any order; ones whose deps are missing wait in Automerge's queue).
    /// Every change is decoded before any is applied, so bad bytes change nothing.
    fn apply_changes(&mut self, py: Python<'_>, changes: Vec<Vec<u8>>) -> PyResult<()> {
        let doc = &mut self.doc;
        py.allow_threads(|| {
            let decoded = changes.into_iter().map(change_from).collect::<PyResult<Vec<_>>>()?;
            guard("apply_changes", || doc.apply_changes(decoded).map_err(am_err))
        })
    }

    /// Hashes of dependencies that are referenced (by queued changes or `heads`) but absent.
    #[pyo3(signature = (heads=Heads::default()))]
    fn get_missing_deps<'py>(&mut self, py: Python<'py>, heads: Heads) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let Heads(heads) = heads;
        Ok(hashes_to_py(py, &self.doc.get_missing_deps(&heads)))
    }

    // ----- sync protocol -----

    /// The next message for the peer behind `state`, or None when there is nothing to say.
    fn generate_sync_message<'py>(&mut self, py: Python<'py>, state: &mut SyncState) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let (doc, st) = (&mut self.doc, &mut state.state);
        let message = py.allow_threads(|| guard("generate_sync_message", || Ok(doc.sync().generate_sync_message(st).map(|m| m.encode()))))?;
        Ok(message.map(|m| PyBytes::new(py, &m)))
    }

    fn receive_sync_message(&mut self, py: Python<'_>, state: &mut SyncState, message: &[u8]) -> PyResult<()> {
        let (doc, st) = (&mut self.doc, &mut state.state);
        py.allow_threads(|| {
            guard("receive_sync_message", || {
                let message = sync::Message::decode(message)
                    .map_err(|e| DecodeError::new_err(format!("invalid sync message: {e}")))?;
                doc.sync().receive_sync_message(st, message).map_err(am_err)
            })
        })
    }

    /// Counts of operations, changes and actors.
    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.doc.document().stats();
        let dict = PyDict::new(py);
        dict.set_item("ops", stats.num_ops)?;
        dict.set_item("changes", stats.num_changes)?;
        dict.set_item("actors", stats.num_actors)?;
        Ok(dict)
    }

    fn __repr__(&mut self) -> String {
        let heads = self.doc.get_heads().len();
        format!("Document(actor={}, heads={heads})", self.doc.get_actor())
    }
}

fn patch_to_py(py: Python<'_>, patch: &Patch) -> PyResult<PyObject> {
    let dict = PyDict::new(py);
    dict.set_item("obj", patch.obj.to_string())?;
    let path = PyList::empty(py);
    for (_, prop) in &patch.path {
        path.append(prop_to_py(py, prop)?)?;
    }
    dict.set_item("path", path)?;
    match &patch.action {
        PatchAction::PutMap { key, value, conflict } => {
            dict.set_item("action", "put_map")?;
            dict.set_item("key", key)?;
            dict.set_item("value", value_to_py(py, &value.0, &value.1)?)?;
            dict.set_item("conflict", conflict)?;
        }
        PatchAction::PutSeq { index, value, conflict } => {
            dict.set_item("action", "put_seq")?;
            dict.set_item("index", index)?;
            dict.set_item("value", value_to_py(py, &value.0, &value.1)?)?;
            dict.set_item("conflict", conflict)?;
        }
        PatchAction::Insert { index, values } => {
            dict.set_item("action", "insert")?;
            dict.set_item("index", index)?;
            let items = PyList::empty(py);
            for (value, id, _) in values.iter() {
                items.append(value_to_py(py, value, id)?)?;
            }
            dict.set_item("values", items)?;
        }
        PatchAction::SpliceText { index, value, .. } => {
            dict.set_item("action", "splice_text")?;
            dict.set_item("index", index)?;
            dict.set_item("value", value.make_string())?;
        }
        PatchAction::Increment { prop, value } => {
            dict.set_item("action", "increment")?;
            dict.set_item("key", prop_to_py(py, prop)?)?;
            dict.set_item("value", value)?;
        }
        PatchAction::Conflict { prop } => {
            dict.set_item("action", "conflict")?;
            dict.set_item("key", prop_to_py(py, prop)?)?;
        }
        PatchAction::DeleteMap { key } => {
            dict.set_item("action", "del_map")?;
            dict.set_item("key", key)?;
        }
        PatchAction::DeleteSeq { index, length } => {
            dict.set_item("action", "del_seq")?;
            dict.set_item("index", index)?;
            dict.set_item("length", length)?;
        }
        PatchAction::Mark { marks } => {
            dict.set_item("action", "mark")?;
            dict.set_item("names", marks.iter().map(|m| m.name().to_string()).collect::<Vec<_>>())?;
        }
    }
    Ok(dict.into_any().unbind())
}

#[pymodule]
fn _automerge(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AutomergeError", py.get_type::<AutomergeError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("InvalidHash", py.get_type::<InvalidHash>())?;
    m.add("InvalidObjectId", py.get_type::<InvalidObjectId>())?;
    m.add("InvalidOperation", py.get_type::<InvalidOperation>())?;
    m.add("ROOT", "_root")?;
    m.add_class::<Document>()?;
    m.add_class::<SyncState>()?;
    m.add_class::<SyncMessage>()?;
    m.add_class::<DecodedChange>()?;
    m.add_class::<ObjectRef>()?;
    m.add_function(wrap_pyfunction!(decode_change, m)?)?;
    m.add_function(wrap_pyfunction!(first_change, m)?)?;
    m.add_function(wrap_pyfunction!(decode_sync_message, m)?)?;
    Ok(())
}
