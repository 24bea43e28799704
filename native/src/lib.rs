//! ``agentledger_native``: AgentLedger's compiled OTLP normalizer.
//!
//! ``Normalizer.normalize`` takes serialized ``ExportTraceServiceRequest``s with their source
//! positions and returns the span and content columns as Arrow buffers (offsets and values),
//! which ``agentledger.pipeline.normalize.native`` wraps into ``pyarrow`` arrays without a copy
//! per value. The work runs without the GIL.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

// Column buffers of tens of megabytes come and go with every batch: mimalloc keeps and reuses
// them (the system allocator maps and faults in fresh pages each time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod conventions;
mod fields;
mod normalize;
mod otlp;
pub mod pyjson;

use normalize::{MapCol, Position, Price, Prices, StrCol, TripleListCol};

fn raw<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: plain numeric types without padding, read as bytes (native endianness, as Arrow)
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn bytes<'py, T: Copy>(py: Python<'py>, v: &[T]) -> Bound<'py, PyAny> {
    PyBytes::new(py, raw(v)).into_any()
}

fn strings<'py>(py: Python<'py>, c: &StrCol) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(py, [bytes(py, &c.offsets), PyBytes::new(py, &c.data).into_any()])?.into_any())
}

fn map<'py>(py: Python<'py>, c: &MapCol) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(py, [bytes(py, &c.offsets), strings(py, &c.keys)?, strings(py, &c.values)?])?.into_any())
}

fn triples<'py>(py: Python<'py>, c: &TripleListCol, third_is_score: bool) -> PyResult<Bound<'py, PyAny>> {
    let third = if third_is_score { bytes(py, &c.score) } else { strings(py, &c.c)? };
    let children = PyTuple::new(py, [strings(py, &c.a)?, strings(py, &c.b)?, third])?;
    Ok(PyTuple::new(py, [bytes(py, &c.offsets), children.into_any()])?.into_any())
}

#[pyclass(frozen, module = "agentledger_native")]
struct Normalizer {
    inner: normalize::Normalizer,
}

#[pymethods]
impl Normalizer {
    /// ``prices``: (provider, model prefix, input, output, cache_read, cache_write) in the price
    /// table's order; ``aliases``: provider name -> table provider.
    #[new]
    #[pyo3(signature = (prices, aliases, ref_threshold = 512))]
    fn new(
        prices: Vec<(String, String, f64, f64, Option<f64>, Option<f64>)>,
        aliases: HashMap<String, String>,
        ref_threshold: usize,
    ) -> Self {
        let mut providers: Vec<(String, Vec<(String, Price)>)> = Vec::new();
        for (provider, prefix, input, output, cache_read, cache_write) in prices {
            let price = Price { input, output, cache_read, cache_write };
            match providers.iter_mut().find(|(p, _)| *p == provider) {
                Some((_, models)) => models.push((prefix, price)),
                None => providers.push((provider, vec![(prefix, price)])),
            }
        }
        Normalizer { inner: normalize::Normalizer { prices: Prices { providers, aliases }, ref_threshold } }
    }

    /// Columns for every span of ``requests``: a list of (serialized request, tenant,
    /// received_at_ns, topic, partition, offset). Returns (span rows, span columns, content rows,
    /// content columns); raises ValueError for a request that is not OTLP protobuf.
    fn normalize<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<(Bound<'py, PyBytes>, String, i64, String, i32, i64)>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let inputs: Vec<(&[u8], Position)> = requests
            .iter()
            .map(|(data, tenant, received, topic, partition, offset)| {
                (
                    data.as_bytes(),
                    Position {
                        tenant: tenant.clone(),
                        received_at_ns: *received,
                        topic: topic.clone(),
                        partition: *partition,
                        offset: *offset,
                    },
                )
            })
            .collect();
        let out = py.detach(|| self.inner.normalize(&inputs)).map_err(PyValueError::new_err)?;
        let s = &out.spans;
        let mut agent = StrCol { offsets: vec![0], data: Vec::new() };
        for n in &s.agent_names {
            agent.push(n);
        }
        let cols = PyDict::new(py);
        let str_cols: Vec<(&str, &StrCol)> = vec![
            ("tenant", &s.tenant), ("trace_id", &s.trace_id), ("span_id", &s.span_id),
            ("parent_span_id", &s.parent_span_id), ("name", &s.name), ("kind", &s.kind),
            ("status_code", &s.status_code), ("status_message", &s.status_message), ("service", &s.service),
            ("agent_name", &agent), ("session_id", &s.session_id), ("user_id", &s.user_id),
            ("principal_id", &s.principal_id), ("policy_id", &s.policy_id), ("provider", &s.provider),
            ("operation", &s.operation), ("request_model", &s.request_model),
            ("response_model", &s.response_model), ("system_fingerprint", &s.system_fingerprint),
            ("cost_source", &s.cost_source), ("tool_name", &s.tool_name), ("tool_call_id", &s.tool_call_id),
            ("input_hash", &s.input_hash), ("output_hash", &s.output_hash),
            ("system_prompt_hash", &s.system_prompt_hash), ("input_preview", &s.input_preview),
            ("request_params", &s.request_params), ("tools_hash", &s.tools_hash),
            ("request_hash", &s.request_hash), ("raw_request_hash", &s.raw_request_hash),
            ("output_preview", &s.output_preview), ("convention", &s.convention),
            ("scope_name", &s.scope_name), ("events", &s.events), ("source_topic", &s.source_topic),
        ];
        for (name, col) in str_cols {
            cols.set_item(name, strings(py, col)?)?;
        }
        cols.set_item("start_time", bytes(py, &s.start_time))?;
        cols.set_item("end_time", bytes(py, &s.end_time))?;
        cols.set_item("duration_ms", bytes(py, &s.duration_ms))?;
        cols.set_item("input_tokens", bytes(py, &s.input_tokens))?;
        cols.set_item("output_tokens", bytes(py, &s.output_tokens))?;
        cols.set_item("cache_read_tokens", bytes(py, &s.cache_read_tokens))?;
        cols.set_item("cache_write_tokens", bytes(py, &s.cache_write_tokens))?;
        cols.set_item("reasoning_tokens", bytes(py, &s.reasoning_tokens))?;
        cols.set_item("cost_usd", bytes(py, &s.cost_usd))?;
        cols.set_item("ingest_time", bytes(py, &s.ingest_time))?;
        cols.set_item("source_partition", bytes(py, &s.source_partition))?;
        cols.set_item("source_offset", bytes(py, &s.source_offset))?;
        cols.set_item(
            "principal_chain",
            PyTuple::new(py, [bytes(py, &s.principal_chain_offsets), strings(py, &s.principal_chain)?])?,
        )?;
        cols.set_item(
            "finish_reasons",
            PyTuple::new(py, [bytes(py, &s.finish_reasons_offsets), strings(py, &s.finish_reasons)?])?,
        )?;
        cols.set_item("tool_calls", triples(py, &s.tool_calls, false)?)?;
        cols.set_item("documents", triples(py, &s.documents, true)?)?;
        cols.set_item("attributes", map(py, &s.attributes)?)?;
        cols.set_item("attribute_refs", map(py, &s.attribute_refs)?)?;
        cols.set_item("resource_attributes", map(py, &s.resource_attributes)?)?;

        let c = &out.contents;
        let contents = PyDict::new(py);
        contents.set_item("tenant", strings(py, &c.tenant)?)?;
        contents.set_item("hash", strings(py, &c.hash)?)?;
        contents.set_item("kind", strings(py, &c.kind)?)?;
        contents.set_item("content", strings(py, &c.content)?)?;
        contents.set_item("size", bytes(py, &c.size))?;
        contents.set_item("first_seen", bytes(py, &c.first_seen))?;
        PyTuple::new(
            py,
            [
                s.rows().into_pyobject(py)?.into_any(),
                cols.into_any(),
                c.size.len().into_pyobject(py)?.into_any(),
                contents.into_any(),
            ],
        )
    }
}

/// What the collector must know of a serialized request before accepting it: (spans, spans
/// with invalid ids, string or bytes attribute values longer than ``max_attribute_length``).
/// Raises ValueError when it does not parse. When both counts are zero the request can be
/// stored exactly as received.
#[pyfunction]
fn inspect(py: Python<'_>, data: &Bound<'_, PyBytes>, max_attribute_length: usize) -> PyResult<(usize, usize, usize)> {
    let bytes = data.as_bytes();
    py.detach(|| normalize::inspect(bytes, max_attribute_length)).map_err(PyValueError::new_err)
}

/// Spans in a serialized request, counted from its framing without decoding the spans (the
/// pipeline consumer's batch weight). Raises ValueError when the framing is broken.
#[pyfunction]
fn count_spans(data: &Bound<'_, PyBytes>) -> PyResult<usize> {
    normalize::count_spans(data.as_bytes()).map_err(PyValueError::new_err)
}

/// ``agentledger.pipeline.derive.ledger.merkle_root``: the RFC 6962-style Merkle tree hash (0x00 leaf
/// prefix, 0x01 node prefix, an odd node carried up) over hex leaves. Raises ValueError for a leaf
/// that is not hex.
#[pyfunction]
fn merkle_root(py: Python<'_>, leaves: Vec<String>) -> PyResult<String> {
    use sha2::{Digest, Sha256};
    py.detach(|| -> Result<String, String> {
        if leaves.is_empty() {
            return Ok(hex::encode(Sha256::digest(b"")));
        }
        let mut level: Vec<[u8; 32]> = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            let bytes = hex::decode(leaf).map_err(|e| format!("leaf {leaf:?} is not hex: {e}"))?;
            level.push(Sha256::new().chain_update([0u8]).chain_update(&bytes).finalize().into());
        }
        while level.len() > 1 {
            let mut next: Vec<[u8; 32]> = level
                .chunks_exact(2)
                .map(|pair| Sha256::new().chain_update([1u8]).chain_update(pair[0]).chain_update(pair[1]).finalize().into())
                .collect();
            if level.len() % 2 == 1 {
                next.push(level[level.len() - 1]);
            }
            level = next;
        }
        Ok(hex::encode(level[0]))
    })
    .map_err(PyValueError::new_err)
}

/// The canonical JSON (RFC 8785, ``agentledger.schemas.canonical``) of a JSON text, as UTF-8
/// bytes: the code path the normalizer hashes content with, exposed so the golden fixtures can
/// hold it to ``agentledger.schemas.canonical.canonicalize``. Raises ValueError for what is not
/// JSON.
#[pyfunction]
fn canonical_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyBytes>> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, pyjson::canonical_string(&value).as_bytes()))
}

#[pymodule]
fn agentledger_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Normalizer>()?;
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(count_spans, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    Ok(())
}
