//! One batch of OTLP requests -> span rows and content records, column by column, in the
//! layout of Arrow arrays (offsets and values), as ``agentledger/pipeline/normalize/otlp.py``
//! builds them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use prost::Message;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::conventions;
use crate::fields::{canonical_tool, parse_json, to_float, Attrs, Event, Fields, Get};
use crate::otlp::{ExportTraceServiceRequest, KeyValue, Span};
use crate::pyjson::{any_to_cow, canonical_array, canonical_string, canonical_text, json_str, kvlist_to_map, py_str, write_kvlist_json};

const PREVIEW: usize = 200;
const K_ATTRIBUTE: &str = "attribute";
const K_MESSAGES: &str = "messages";
const K_TEXT: &str = "text";
const K_DOCUMENT: &str = "document";
const K_ARGS: &str = "tool_arguments";
const K_RESULT: &str = "tool_result";
const K_TOOLS: &str = "tools";

/// Where a request came from (see ``SourcePosition``).
pub struct Position {
    pub tenant: String,
    pub received_at_ns: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

// -- column builders -------------------------------------------------------------------------

#[derive(Default)]
pub struct StrCol {
    pub offsets: Vec<i32>,
    pub data: Vec<u8>,
}

impl StrCol {
    fn new() -> Self {
        StrCol { offsets: vec![0], data: Vec::new() }
    }
    #[inline]
    pub fn push(&mut self, s: &str) {
        self.data.extend_from_slice(s.as_bytes());
        self.offsets.push(self.data.len() as i32);
    }
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    pub fn too_large(&self) -> bool {
        self.data.len() > i32::MAX as usize
    }
}

pub struct MapCol {
    pub offsets: Vec<i32>,
    pub keys: StrCol,
    pub values: StrCol,
}

impl MapCol {
    fn new() -> Self {
        MapCol { offsets: vec![0], keys: StrCol::new(), values: StrCol::new() }
    }
    fn push<'a>(&mut self, entries: impl Iterator<Item = (&'a str, &'a str)>) {
        for (k, v) in entries {
            self.keys.push(k);
            self.values.push(v);
        }
        self.offsets.push(self.keys.len() as i32);
    }
}

/// ``list<struct<a: string, b: string, c: string|double>>``
pub struct TripleListCol {
    pub offsets: Vec<i32>,
    pub a: StrCol,
    pub b: StrCol,
    pub c: StrCol,
    pub score: Vec<f64>,
}

impl TripleListCol {
    fn new() -> Self {
        TripleListCol { offsets: vec![0], a: StrCol::new(), b: StrCol::new(), c: StrCol::new(), score: Vec::new() }
    }
    fn close(&mut self) {
        self.offsets.push(self.a.len() as i32);
    }
}

/// The span columns (schema order is kept by ``lib.rs`` when they go to Python).
pub struct SpanCols {
    pub tenant: StrCol,
    pub trace_id: StrCol,
    pub span_id: StrCol,
    pub parent_span_id: StrCol,
    pub start_time: Vec<i64>,
    pub end_time: Vec<i64>,
    pub duration_ms: Vec<f64>,
    pub name: StrCol,
    pub kind: StrCol,
    pub status_code: StrCol,
    pub status_message: StrCol,
    pub service: StrCol,
    pub agent_names: Vec<String>,
    pub session_id: StrCol,
    pub user_id: StrCol,
    pub principal_id: StrCol,
    pub principal_chain_offsets: Vec<i32>,
    pub principal_chain: StrCol,
    pub policy_id: StrCol,
    pub provider: StrCol,
    pub operation: StrCol,
    pub request_model: StrCol,
    pub response_model: StrCol,
    pub system_fingerprint: StrCol,
    pub input_tokens: Vec<u64>,
    pub output_tokens: Vec<u64>,
    pub cache_read_tokens: Vec<u64>,
    pub cache_write_tokens: Vec<u64>,
    pub reasoning_tokens: Vec<u64>,
    pub cost_usd: Vec<f64>,
    pub cost_source: StrCol,
    pub tool_name: StrCol,
    pub tool_call_id: StrCol,
    pub tool_calls: TripleListCol,
    pub input_hash: StrCol,
    pub output_hash: StrCol,
    pub system_prompt_hash: StrCol,
    pub request_params: StrCol,
    pub tools_hash: StrCol,
    pub finish_reasons_offsets: Vec<i32>,
    pub finish_reasons: StrCol,
    pub request_hash: StrCol,
    pub raw_request_hash: StrCol,
    pub input_preview: StrCol,
    pub output_preview: StrCol,
    pub documents: TripleListCol,
    pub convention: StrCol,
    pub scope_name: StrCol,
    pub attributes: MapCol,
    pub attribute_refs: MapCol,
    pub resource_attributes: MapCol,
    pub events: StrCol,
    pub ingest_time: Vec<i64>,
    pub source_topic: StrCol,
    pub source_partition: Vec<i32>,
    pub source_offset: Vec<i64>,
}

impl SpanCols {
    fn new() -> Self {
        SpanCols {
            tenant: StrCol::new(),
            trace_id: StrCol::new(),
            span_id: StrCol::new(),
            parent_span_id: StrCol::new(),
            start_time: Vec::new(),
            end_time: Vec::new(),
            duration_ms: Vec::new(),
            name: StrCol::new(),
            kind: StrCol::new(),
            status_code: StrCol::new(),
            status_message: StrCol::new(),
            service: StrCol::new(),
            agent_names: Vec::new(),
            session_id: StrCol::new(),
            user_id: StrCol::new(),
            principal_id: StrCol::new(),
            principal_chain_offsets: vec![0],
            principal_chain: StrCol::new(),
            policy_id: StrCol::new(),
            provider: StrCol::new(),
            operation: StrCol::new(),
            request_model: StrCol::new(),
            response_model: StrCol::new(),
            system_fingerprint: StrCol::new(),
            input_tokens: Vec::new(),
            output_tokens: Vec::new(),
            cache_read_tokens: Vec::new(),
            cache_write_tokens: Vec::new(),
            reasoning_tokens: Vec::new(),
            cost_usd: Vec::new(),
            cost_source: StrCol::new(),
            tool_name: StrCol::new(),
            tool_call_id: StrCol::new(),
            tool_calls: TripleListCol::new(),
            input_hash: StrCol::new(),
            output_hash: StrCol::new(),
            system_prompt_hash: StrCol::new(),
            request_params: StrCol::new(),
            tools_hash: StrCol::new(),
            finish_reasons_offsets: vec![0],
            finish_reasons: StrCol::new(),
            request_hash: StrCol::new(),
            raw_request_hash: StrCol::new(),
            input_preview: StrCol::new(),
            output_preview: StrCol::new(),
            documents: TripleListCol::new(),
            convention: StrCol::new(),
            scope_name: StrCol::new(),
            attributes: MapCol::new(),
            attribute_refs: MapCol::new(),
            resource_attributes: MapCol::new(),
            events: StrCol::new(),
            ingest_time: Vec::new(),
            source_topic: StrCol::new(),
            source_partition: Vec::new(),
            source_offset: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.start_time.len()
    }

    /// Room for ``rows`` more rows in every per-row vector (no regrowth while filling).
    fn reserve(&mut self, rows: usize) {
        // hex ids and content hashes have a fixed width
        self.trace_id.data.reserve(32 * rows);
        self.span_id.data.reserve(16 * rows);
        self.parent_span_id.data.reserve(16 * rows);
        self.input_hash.data.reserve(64 * rows);
        self.output_hash.data.reserve(64 * rows);
        self.input_preview.data.reserve(64 * rows);
        self.output_preview.data.reserve(64 * rows);
        self.tenant.offsets.reserve(rows);
        self.trace_id.offsets.reserve(rows);
        self.span_id.offsets.reserve(rows);
        self.parent_span_id.offsets.reserve(rows);
        self.start_time.reserve(rows);
        self.end_time.reserve(rows);
        self.duration_ms.reserve(rows);
        self.name.offsets.reserve(rows);
        self.kind.offsets.reserve(rows);
        self.status_code.offsets.reserve(rows);
        self.status_message.offsets.reserve(rows);
        self.service.offsets.reserve(rows);
        self.agent_names.reserve(rows);
        self.session_id.offsets.reserve(rows);
        self.user_id.offsets.reserve(rows);
        self.principal_id.offsets.reserve(rows);
        self.principal_chain_offsets.reserve(rows);
        self.principal_chain.offsets.reserve(rows);
        self.policy_id.offsets.reserve(rows);
        self.provider.offsets.reserve(rows);
        self.operation.offsets.reserve(rows);
        self.request_model.offsets.reserve(rows);
        self.response_model.offsets.reserve(rows);
        self.system_fingerprint.offsets.reserve(rows);
        self.input_tokens.reserve(rows);
        self.output_tokens.reserve(rows);
        self.cache_read_tokens.reserve(rows);
        self.cache_write_tokens.reserve(rows);
        self.reasoning_tokens.reserve(rows);
        self.cost_usd.reserve(rows);
        self.cost_source.offsets.reserve(rows);
        self.tool_name.offsets.reserve(rows);
        self.tool_call_id.offsets.reserve(rows);
        self.tool_calls.offsets.reserve(rows);
        self.input_hash.offsets.reserve(rows);
        self.output_hash.offsets.reserve(rows);
        self.system_prompt_hash.offsets.reserve(rows);
        self.request_params.offsets.reserve(rows);
        self.tools_hash.offsets.reserve(rows);
        self.finish_reasons_offsets.reserve(rows);
        self.request_hash.offsets.reserve(rows);
        self.raw_request_hash.offsets.reserve(rows);
        self.input_preview.offsets.reserve(rows);
        self.output_preview.offsets.reserve(rows);
        self.documents.offsets.reserve(rows);
        self.convention.offsets.reserve(rows);
        self.scope_name.offsets.reserve(rows);
        self.attributes.offsets.reserve(rows);
        self.attribute_refs.offsets.reserve(rows);
        self.resource_attributes.offsets.reserve(rows);
        self.events.offsets.reserve(rows);
        self.ingest_time.reserve(rows);
        self.source_topic.offsets.reserve(rows);
        self.source_partition.reserve(rows);
        self.source_offset.reserve(rows);
    }

}

pub struct ContentCols {
    pub tenant: StrCol,
    pub hash: StrCol,
    pub kind: StrCol,
    pub content: StrCol,
    pub size: Vec<u64>,
    pub first_seen: Vec<i64>,
}

// -- prices ----------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

impl Price {
    fn cost(&self, input_tokens: i64, output_tokens: i64, cache_read: i64, cache_write: i64) -> f64 {
        let mut uncached = input_tokens;
        let mut total = 0.0;
        if let Some(p) = self.cache_read {
            if cache_read != 0 {
                uncached -= cache_read.min(uncached);
                total += cache_read as f64 * p;
            }
        }
        if let Some(p) = self.cache_write {
            if cache_write != 0 {
                total += cache_write as f64 * p;
            }
        }
        total += uncached as f64 * self.input + output_tokens as f64 * self.output;
        total / 1_000_000.0
    }
}

/// The price table: (provider, [(model prefix, price)]) in the Python table's order.
pub struct Prices {
    pub providers: Vec<(String, Vec<(String, Price)>)>,
    pub aliases: HashMap<String, String>,
}

impl Prices {
    fn lookup(&self, provider: &str, model: &str) -> Option<Price> {
        let canonical = if provider.is_empty() {
            String::new()
        } else {
            let lower = provider.to_lowercase();
            self.aliases.get(&lower).cloned().unwrap_or(lower)
        };
        let lower_model = model.to_lowercase();
        let name = lower_model.rsplit('/').next().unwrap_or("");
        let known = self.providers.iter().any(|(p, _)| *p == canonical);
        let mut best: i64 = -1;
        let mut found = None;
        for (prov, models) in &self.providers {
            if known && *prov != canonical {
                continue;
            }
            for (prefix, price) in models {
                let len = prefix.chars().count() as i64;
                if name.starts_with(prefix.as_str()) && len > best {
                    best = len;
                    found = Some(*price);
                }
            }
        }
        found
    }
}

// -- the builder -----------------------------------------------------------------------------

fn sha256_hex(data: &[u8]) -> (String, [u8; 32]) {
    let digest: [u8; 32] = Sha256::digest(data).into();
    (hex::encode(digest), digest)
}

/// The first ``n`` characters of ``s``.
fn chars_prefix(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn char_len_over(s: &str, n: usize) -> bool {
    s.len() > n && s.chars().count() > n
}

struct Builder<'p> {
    spans: SpanCols,
    contents: ContentCols,
    seen: HashMap<String, HashSet<[u8; 32]>>,
    tenant: String,
    seen_ms: i64,
    prices: &'p Prices,
    price_cache: HashMap<(String, String), Option<Price>>,
    /// recorded tool definitions (``Fields::tools_key``) -> (hash, digest, canonical JSON): an
    /// agent offers the same tools on every call
    tools_memo: HashMap<String, (String, [u8; 32], String)>,
}

impl<'p> Builder<'p> {
    fn start(&mut self, tenant: &str, received_at_ns: i64) {
        self.tenant = tenant.to_string();
        self.seen_ms = received_at_ns.div_euclid(1_000_000);
        self.seen.entry(self.tenant.clone()).or_default();
    }

    /// The hash of a canonical form, recording the content the first time it is seen.
    fn canonical(&mut self, canonical: &str, kind: &str) -> String {
        let (hex, digest) = sha256_hex(canonical.as_bytes());
        self.record(&hex, digest, canonical, kind);
        hex
    }

    /// Record a content (hashed already) for the current tenant unless it has it.
    fn record(&mut self, hex: &str, digest: [u8; 32], canonical: &str, kind: &str) {
        let seen = self.seen.get_mut(&self.tenant).expect("start() registers the tenant");
        if seen.insert(digest) {
            let c = &mut self.contents;
            c.tenant.push(&self.tenant);
            c.hash.push(hex);
            c.kind.push(kind);
            c.content.push(canonical);
            c.size.push(canonical.len() as u64);
            c.first_seen.push(self.seen_ms);
        }
    }

    /// The hash of the canonical list of the tools offered, recording it the first time it is
    /// seen; the same recorded definitions (``key``) are made canonical once per batch.
    fn tools(&mut self, tools: &[Value], key: Option<String>) -> String {
        if let Some((hex, digest, canonical)) = key.as_ref().and_then(|k| self.tools_memo.get(k)) {
            let (hex, digest, canonical) = (hex.clone(), *digest, canonical.clone());
            self.record(&hex, digest, &canonical, K_TOOLS);
            return hex;
        }
        let canonical = canonical_array(&tools.iter().map(canonical_tool).collect::<Vec<_>>());
        let (hex, digest) = sha256_hex(canonical.as_bytes());
        self.record(&hex, digest, &canonical, K_TOOLS);
        if let Some(k) = key {
            if self.tools_memo.len() < 1024 {
                self.tools_memo.insert(k, (hex.clone(), digest, canonical));
            }
        }
        hex
    }

    fn content(&mut self, value: &Value, kind: &str) -> String {
        match value {
            Value::String(s) => self.canonical(s, kind),
            other => {
                let text = canonical_string(other);
                self.canonical(&text, kind)
            }
        }
    }

    /// Hash and preview of an input or output value.
    fn value(&mut self, value: &Value, kind: &str) -> (String, String) {
        let mut parsed = None;
        if let Value::String(s) = value {
            if kind == K_ARGS || kind == K_RESULT {
                parsed = parse_json(Some(s)).filter(|p| p.is_object() || p.is_array());
            }
            if parsed.is_none() {
                return (self.canonical(s, kind), chars_prefix(s, PREVIEW).to_string());
            }
        }
        let text = canonical_string(parsed.as_ref().unwrap_or(value));
        let hash = self.canonical(&text, kind);
        // the first PREVIEW characters of the first 4 * PREVIEW bytes (a character cut at the end dropped)
        let bytes = &text.as_bytes()[..text.len().min(4 * PREVIEW)];
        let cut = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
        (hash, chars_prefix(cut, PREVIEW).to_string())
    }

    fn price(&mut self, provider: &str, model: &str) -> Option<Price> {
        let key = (provider.to_string(), model.to_string());
        if let Some(p) = self.price_cache.get(&key) {
            return *p;
        }
        let found = self.prices.lookup(provider, model);
        self.price_cache.insert(key, found);
        found
    }
}

fn message_text(msg: &Value) -> String {
    match msg.get("content") {
        Some(Value::String(s)) => return s.clone(),
        Some(Value::Array(parts)) => {
            return parts
                .iter()
                .filter_map(|p| p.get("text").filter(|t| crate::fields::truthy(t)))
                .map(py_str)
                .collect::<Vec<_>>()
                .join(" ");
        }
        _ => {}
    }
    if let Some(Value::Array(calls)) = msg.get("tool_calls") {
        if !calls.is_empty() {
            return calls
                .iter()
                .map(|c| {
                    let name = c.get("name").map(py_str).unwrap_or_default();
                    let args = c.get("arguments").map(canonical_text).unwrap_or_default();
                    format!("{name}({args})")
                })
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    String::new()
}

fn provider_from_model(model: &str) -> &'static str {
    let m = model.to_lowercase();
    let starts = |ps: &[&str]| ps.iter().any(|p| m.starts_with(p));
    if starts(&["gpt-", "o1", "o3", "o4", "text-embedding", "chatgpt"]) {
        "openai"
    } else if starts(&["claude"]) {
        "anthropic"
    } else if starts(&["gemini"]) {
        "google"
    } else if starts(&["mistral", "mixtral"]) {
        "mistral"
    } else {
        ""
    }
}

/// The attribute strings of ``kvs`` (string values borrowed, others formatted).
fn values_of(kvs: &[KeyValue]) -> Vec<Cow<'_, str>> {
    kvs.iter().map(|kv| any_to_cow(kv.value.as_ref())).collect()
}

/// The attributes as the Python normalizer's dict (borrowing ``values``).
fn attrs_of<'a>(kvs: &'a [KeyValue], values: &'a [Cow<'a, str>]) -> Attrs<'a> {
    let mut map = Attrs::with_capacity_and_hasher(kvs.len(), Default::default());
    for (kv, v) in kvs.iter().zip(values) {
        map.insert(kv.key.as_str(), v.as_ref());
    }
    map
}

/// One protobuf field: (field number, wire type, the value's bytes for length-delimited fields).
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, u8, &'a [u8]), String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let key = varint(buf)?;
    let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
    let skip = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!("field {field}: {n} bytes declared, {} left", buf.len()));
        }
        let (value, rest) = buf.split_at(n);
        *buf = rest;
        Ok(value)
    };
    let value = match wire {
        0 => {
            varint(buf)?;
            &[][..]
        }
        1 => skip(buf, 8)?,
        2 => {
            let n = varint(buf)? as usize;
            skip(buf, n)?
        }
        5 => skip(buf, 4)?,
        other => return Err(format!("field {field}: unsupported wire type {other}")),
    };
    Ok((field, wire, value))
}

/// Spans in a serialized request, read without decoding them (no allocation): the length
/// framing of ``resource_spans`` > ``scope_spans`` > ``spans`` is checked, the spans' contents
/// are left to the normalizer.
pub fn count_spans(data: &[u8]) -> Result<usize, String> {
    let mut spans = 0;
    let mut request = data;
    while !request.is_empty() {
        let (field, wire, mut resource_spans) = next_field(&mut request)?;
        if field != 1 || wire != 2 {
            continue;
        }
        while !resource_spans.is_empty() {
            let (field, wire, mut scope_spans) = next_field(&mut resource_spans)?;
            if field != 2 || wire != 2 {
                continue;
            }
            while !scope_spans.is_empty() {
                let (field, wire, _) = next_field(&mut scope_spans)?;
                if field == 2 && wire == 2 {
                    spans += 1;
                }
            }
        }
    }
    Ok(spans)
}

/// (spans, spans with invalid ids, attribute values over ``max_len``) of a serialized request,
/// by the collector's rules (``drop_invalid_spans``, ``truncate_attributes``).
pub fn inspect(data: &[u8], max_len: usize) -> Result<(usize, usize, usize), String> {
    use crate::otlp::any_value::Value as V;
    let request = ExportTraceServiceRequest::decode(data).map_err(|e| e.to_string())?;
    let (mut spans, mut invalid, mut over) = (0, 0, 0);
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                spans += 1;
                let zero = |id: &[u8]| id.iter().all(|b| *b == 0);
                if span.trace_id.len() != 16
                    || zero(&span.trace_id)
                    || span.span_id.len() != 8
                    || zero(&span.span_id)
                    || (!span.parent_span_id.is_empty() && span.parent_span_id.len() != 8)
                {
                    invalid += 1;
                }
                for kv in &span.attributes {
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(V::StringValue(s)) if char_len_over(s, max_len) => over += 1,
                        Some(V::BytesValue(b)) if b.len() > max_len => over += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok((spans, invalid, over))
}

pub struct Normalizer {
    pub prices: Prices,
    pub ref_threshold: usize,
}

pub struct Output {
    pub spans: SpanCols,
    pub contents: ContentCols,
}

impl Normalizer {
    pub fn normalize(&self, requests: &[(&[u8], Position)]) -> Result<Output, String> {
        let mut b = Builder {
            spans: SpanCols::new(),
            contents: ContentCols {
                tenant: StrCol::new(),
                hash: StrCol::new(),
                kind: StrCol::new(),
                content: StrCol::new(),
                size: Vec::new(),
                first_seen: Vec::new(),
            },
            seen: HashMap::new(),
            tenant: String::new(),
            seen_ms: 0,
            prices: &self.prices,
            price_cache: HashMap::new(),
            tools_memo: HashMap::new(),
        };
        // rows and text grow to about what the input holds: reserve it once (no regrowth copies)
        let rows: usize = requests.iter().map(|(data, _)| count_spans(data).unwrap_or(0)).sum();
        b.spans.reserve(rows);
        let total: usize = requests.iter().map(|(data, _)| data.len()).sum();
        b.spans.attributes.values.data.reserve(total);
        b.contents.content.data.reserve(total / 2);
        for (i, (data, pos)) in requests.iter().enumerate() {
            let request = ExportTraceServiceRequest::decode(*data)
                .map_err(|e| format!("request {i}: malformed OTLP protobuf: {e}"))?;
            b.start(&pos.tenant, pos.received_at_ns);
            self.request(&request, pos, &mut b);
        }
        if b.spans.attributes.values.too_large() || b.contents.content.too_large() || b.spans.events.too_large() {
            return Err("batch too large for one Arrow array (over 2 GiB of text); normalize fewer requests at a time".into());
        }
        Ok(Output { spans: b.spans, contents: b.contents })
    }

    fn request(&self, request: &ExportTraceServiceRequest, pos: &Position, b: &mut Builder) {
        let first_row = b.spans.rows();
        // per row of this request: (is an AGENT span, trace id, name), for agent-name propagation
        let mut agents: Vec<(bool, String, String)> = Vec::new();
        for rs in &request.resource_spans {
            let resource_kvs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            let resource_values = values_of(resource_kvs);
            let resource = attrs_of(resource_kvs, &resource_values);
            let service = resource.s("service.name").unwrap_or("").to_string();
            for ss in &rs.scope_spans {
                let scope_name = ss.scope.as_ref().map_or("", |s| s.name.as_str());
                for span in &ss.spans {
                    let row = self.span(span, &resource, &service, scope_name, pos, b);
                    agents.push(row);
                }
            }
        }
        // spans of a trace whose AGENT span is in the same request inherit its agent name
        let names = &mut b.spans.agent_names[first_row..];
        if names.iter().all(|n| !n.is_empty()) {
            return;
        }
        let mut by_trace: HashMap<&str, String> = HashMap::new();
        for (i, (is_agent, trace, name)) in agents.iter().enumerate() {
            if *is_agent && !by_trace.contains_key(trace.as_str()) {
                let n = if names[i].is_empty() { name.clone() } else { names[i].clone() };
                by_trace.insert(trace.as_str(), n);
            }
        }
        if by_trace.is_empty() {
            return;
        }
        for (i, (_, trace, _)) in agents.iter().enumerate() {
            if names[i].is_empty() {
                if let Some(n) = by_trace.get(trace.as_str()) {
                    names[i] = n.clone();
                }
            }
        }
    }

    fn span(
        &self,
        span: &Span,
        resource: &Attrs,
        service: &str,
        scope_name: &str,
        pos: &Position,
        b: &mut Builder,
    ) -> (bool, String, String) {
        let threshold = self.ref_threshold;
        let values = values_of(&span.attributes);
        let attrs = attrs_of(&span.attributes, &values);
        // attribute maps: small values stored, large ones referenced by content hash
        let mut input_ref: Option<String> = None; // the hash of a referenced input.value
        if attrs.len() != span.attributes.len() {
            // a key repeated: each value goes where its size says
            let mut small = Attrs::default();
            let mut refs: IndexMap<&str, String, FxBuildHasher> = IndexMap::default();
            for (kv, value) in span.attributes.iter().zip(&values) {
                if char_len_over(value, threshold) {
                    let h = b.canonical(value, K_ATTRIBUTE);
                    refs.insert(kv.key.as_str(), h);
                } else {
                    small.insert(kv.key.as_str(), value.as_ref());
                }
            }
            b.spans.attributes.push(small.iter().map(|(k, v)| (*k, *v)));
            b.spans.attribute_refs.push(refs.iter().map(|(k, v)| (*k, v.as_str())));
        } else {
            let mut refs: Vec<(&str, String)> = Vec::new();
            for (k, v) in &attrs {
                if char_len_over(v, threshold) {
                    let h = b.canonical(v, K_ATTRIBUTE);
                    refs.push((*k, h));
                }
            }
            if refs.is_empty() {
                b.spans.attributes.push(attrs.iter().map(|(k, v)| (*k, *v)));
            } else {
                input_ref = refs.iter().find(|(k, _)| *k == "input.value").map(|(_, h)| h.clone());
                b.spans.attributes.push(
                    attrs.iter().filter(|(k, _)| !refs.iter().any(|(rk, _)| rk == *k)).map(|(k, v)| (*k, *v)),
                );
            }
            b.spans.attribute_refs.push(refs.iter().map(|(k, v)| (*k, v.as_str())));
        }
        b.spans.resource_attributes.push(resource.iter().map(|(k, v)| (*k, *v)));

        // events, as the extractors see them and as stored (json.dumps of the Python list)
        let mut events: Vec<Event> = Vec::new();
        let mut events_json = String::new();
        if !span.events.is_empty() {
            events_json.push('[');
            for (i, ev) in span.events.iter().enumerate() {
                if i > 0 {
                    events_json.push_str(", ");
                }
                events_json.push_str("{\"name\": ");
                json_str(&mut events_json, &ev.name);
                events_json.push_str(", \"time_unix_nano\": ");
                events_json.push_str(&ev.time_unix_nano.to_string());
                events_json.push_str(", \"attributes\": ");
                write_kvlist_json(&mut events_json, &ev.attributes, false);
                events_json.push('}');
                events.push(Event { name: ev.name.clone(), attributes: kvlist_to_map(&ev.attributes) });
            }
            events_json.push(']');
        }

        let mut f = Fields::default();
        let convention = conventions::extract(&attrs, resource, scope_name, &span.name, &events, &mut f);
        self.row(b, span, &attrs, service, scope_name, &events_json, f, convention, pos, input_ref)
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        b: &mut Builder,
        span: &Span,
        attrs: &Attrs,
        service: &str,
        scope_name: &str,
        events_json: &str,
        mut f: Fields,
        convention: &str,
        pos: &Position,
        input_ref: Option<String>,
    ) -> (bool, String, String) {
        let start = span.start_time_unix_nano;
        let end = span.end_time_unix_nano.max(start);
        let mut input_hash = String::new();
        let mut output_hash = String::new();
        let mut system_hash = String::new();
        let mut input_preview = String::new();
        let mut output_preview = String::new();
        let mut tool_calls: Vec<(String, String, String)> = Vec::new();
        if let Some(msgs) = f.input_messages.as_ref().filter(|m| !m.is_empty()) {
            input_hash = b.canonical(&canonical_array(msgs), K_MESSAGES);
            let mut system: Vec<String> = Vec::new();
            let mut last_user = None;
            for m in msgs {
                match m.get("role").and_then(Value::as_str) {
                    Some("system") | Some("developer") => system.push(message_text(m)),
                    Some("user") => last_user = Some(m),
                    _ => {}
                }
            }
            if !system.is_empty() {
                system_hash = b.canonical(&system.join("\n"), K_TEXT);
            }
            input_preview = chars_prefix(&message_text(last_user.unwrap_or(&msgs[msgs.len() - 1])), PREVIEW).to_string();
        } else if let Some(v) = f.input_value.as_ref().filter(|v| !v.is_null() && v.as_str() != Some("")) {
            let kind = if f.input_kind == "tool_arguments" { K_ARGS } else { K_TEXT };
            (input_hash, input_preview) = b.value(v, kind);
        }
        if let Some(msgs) = f.output_messages.as_ref().filter(|m| !m.is_empty()) {
            output_hash = b.canonical(&canonical_array(msgs), K_MESSAGES);
            output_preview = chars_prefix(&message_text(&msgs[msgs.len() - 1]), PREVIEW).to_string();
            for m in msgs {
                if let Some(Value::Array(calls)) = m.get("tool_calls") {
                    for c in calls {
                        let id = c.get("id").map(py_str).unwrap_or_default();
                        let name = c.get("name").map(py_str).unwrap_or_default();
                        let args = b.content(c.get("arguments").unwrap_or(&Value::Null), K_ARGS);
                        tool_calls.push((id, name, args));
                    }
                }
            }
        } else if let Some(v) = f.output_value.as_ref().filter(|v| !v.is_null() && v.as_str() != Some("")) {
            let kind = if f.output_kind == "tool_result" { K_RESULT } else { K_TEXT };
            (output_hash, output_preview) = b.value(v, kind);
        }
        let mut documents: Vec<(String, String, f64)> = Vec::new();
        if let Some(docs) = &f.documents {
            for (did, text, score) in docs {
                let h = b.canonical(text, K_DOCUMENT);
                documents.push((did.clone(), h, *score));
            }
        }
        // the canonical call (agentledger/schemas/calls.py)
        let tools_hash = match f.tools.as_ref().filter(|t| !t.is_empty()) {
            Some(tools) => b.tools(tools, f.tools_key.take()),
            None => String::new(),
        };
        let request_params =
            if f.params.is_empty() { String::new() } else { canonical_string(&Value::Object(std::mem::take(&mut f.params))) };
        let request_hash = if f.kind == "LLM" && f.input_messages.as_ref().is_some_and(|m| !m.is_empty()) {
            let mut envelope = String::with_capacity(200 + request_params.len());
            envelope.push_str("{\"messages\":\"");
            envelope.push_str(&input_hash);
            envelope.push_str("\",\"model\":");
            envelope.push_str(&canonical_string(&Value::String(f.request_model.clone())));
            envelope.push_str(",\"params\":");
            envelope.push_str(if request_params.is_empty() { "{}" } else { &request_params });
            envelope.push_str(",\"tools\":\"");
            envelope.push_str(&tools_hash);
            envelope.push_str("\"}");
            sha256_hex(envelope.as_bytes()).0
        } else {
            String::new()
        };
        // the recorded request is input.value: stored already when it was large enough to be referenced
        let raw_request_hash = match f.raw_request.as_deref() {
            Some(raw) if !raw.is_empty() => input_ref.unwrap_or_else(|| b.canonical(raw, K_ATTRIBUTE)),
            _ => String::new(),
        };
        // cost
        let input_tokens = f.input_tokens.unwrap_or(0);
        let output_tokens = f.output_tokens.unwrap_or(0);
        let cache_read = f.cache_read_tokens.unwrap_or(0);
        let cache_write = f.cache_write_tokens.unwrap_or(0);
        let mut cost = f.cost;
        if let Some(explicit) = attrs.nz("agentledger.cost.usd") {
            if let Some(c) = to_float(Some(explicit)) {
                cost = Some(c);
            }
        }
        let model = if f.response_model.is_empty() { &f.request_model } else { &f.response_model };
        let (cost, cost_source) = match cost {
            Some(c) => (c, "span"),
            None => {
                let mut out = (0.0, "none");
                if !model.is_empty() && (input_tokens != 0 || output_tokens != 0) {
                    if let Some(price) = b.price(&f.provider, model) {
                        out = (price.cost(input_tokens, output_tokens, cache_read, cache_write), "price_table");
                    }
                }
                out
            }
        };
        let provider = if !f.provider.is_empty() {
            f.provider.as_str()
        } else if !model.is_empty() {
            provider_from_model(model)
        } else {
            ""
        };
        let chain: Vec<String> = match attrs.nz("agentledger.principal.chain").and_then(|c| parse_json(Some(c))) {
            Some(Value::Array(items)) => items.iter().map(py_str).collect(),
            _ => Vec::new(),
        };
        let (code, status_message) = span.status.as_ref().map_or((0, ""), |s| (s.code, s.message.as_str()));

        let c = &mut b.spans;
        let trace_hex = hex::encode(&span.trace_id);
        c.tenant.push(&pos.tenant);
        c.trace_id.push(&trace_hex);
        c.span_id.push(&hex::encode(&span.span_id));
        c.parent_span_id.push(&hex::encode(&span.parent_span_id));
        c.start_time.push(start as i64);
        c.end_time.push(end as i64);
        c.duration_ms.push((end - start) as f64 / 1e6);
        c.name.push(&span.name);
        let kind = if f.kind.is_empty() { "UNKNOWN" } else { f.kind.as_str() };
        c.kind.push(kind);
        c.status_code.push(match code {
            1 => "OK",
            2 => "ERROR",
            _ => "UNSET",
        });
        c.status_message.push(status_message);
        c.service.push(service);
        let agent_name = attrs.nz("agentledger.agent.name").unwrap_or(&f.agent_name).to_string();
        c.agent_names.push(agent_name);
        c.session_id.push(&f.session_id);
        c.user_id.push(&f.user_id);
        c.principal_id.push(attrs.s("agentledger.principal.id").unwrap_or(""));
        for item in &chain {
            c.principal_chain.push(item);
        }
        c.principal_chain_offsets.push(c.principal_chain.len() as i32);
        c.policy_id.push(attrs.s("agentledger.policy.id").unwrap_or(""));
        c.provider.push(provider);
        c.operation.push(&f.operation);
        c.request_model.push(&f.request_model);
        c.response_model.push(&f.response_model);
        c.system_fingerprint.push(&f.system_fingerprint);
        c.input_tokens.push(input_tokens.max(0) as u64);
        c.output_tokens.push(output_tokens.max(0) as u64);
        c.cache_read_tokens.push(cache_read.max(0) as u64);
        c.cache_write_tokens.push(cache_write.max(0) as u64);
        c.reasoning_tokens.push(f.reasoning_tokens.unwrap_or(0).max(0) as u64);
        c.cost_usd.push(cost);
        c.cost_source.push(cost_source);
        c.tool_name.push(&f.tool_name);
        c.tool_call_id.push(&f.tool_call_id);
        for (id, name, args) in &tool_calls {
            c.tool_calls.a.push(id);
            c.tool_calls.b.push(name);
            c.tool_calls.c.push(args);
        }
        c.tool_calls.close();
        c.input_hash.push(&input_hash);
        c.output_hash.push(&output_hash);
        c.system_prompt_hash.push(&system_hash);
        c.request_params.push(&request_params);
        c.tools_hash.push(&tools_hash);
        for reason in f.finish_reasons.iter().flatten() {
            c.finish_reasons.push(reason);
        }
        c.finish_reasons_offsets.push(c.finish_reasons.len() as i32);
        c.request_hash.push(&request_hash);
        c.raw_request_hash.push(&raw_request_hash);
        c.input_preview.push(&input_preview);
        c.output_preview.push(&output_preview);
        for (id, hash, score) in &documents {
            c.documents.a.push(id);
            c.documents.b.push(hash);
            c.documents.score.push(*score);
        }
        c.documents.close();
        c.convention.push(convention);
        c.scope_name.push(scope_name);
        c.events.push(events_json);
        c.ingest_time.push(pos.received_at_ns.div_euclid(1_000_000));
        c.source_topic.push(&pos.topic);
        c.source_partition.push(pos.partition);
        c.source_offset.push(pos.offset);
        (kind == "AGENT", trace_hex, span.name.clone())
    }
}
