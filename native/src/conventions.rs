//! The convention extractors: OpenInference, Langfuse, OpenLIT, OpenLLMetry/Traceloop and
//! OpenTelemetry GenAI. Each follows its Python twin in
//! ``agentledger/pipeline/normalize/conventions/`` rule for rule; the test suite runs every
//! convention test through both and compares the stored rows.

use serde_json::{Map, Value};

use crate::fields::*;
use crate::pyjson::{canonical_text, py_str};

pub const OPENINFERENCE: &str = "openinference";
pub const LANGFUSE: &str = "langfuse";
pub const OPENLIT: &str = "openlit";
pub const OPENLLMETRY: &str = "openllmetry";
pub const GENAI: &str = "otel_genai";
pub const UNKNOWN: &str = "unknown";

/// Fills ``f`` by the span's convention; returns the convention's name.
pub fn extract(attrs: &Attrs, resource: &Attrs, scope_name: &str, span_name: &str, events: &[Event], f: &mut Fields) -> &'static str {
    if attrs.contains_key("openinference.span.kind") {
        openinference(attrs, f);
        OPENINFERENCE
    } else if attrs.contains_key("langfuse.observation.type") || attrs.keys().any(|k| k.starts_with("langfuse.")) {
        langfuse(attrs, f, events, span_name);
        LANGFUSE
    } else if resource.s("telemetry.sdk.name") == Some("openlit") || scope_name.starts_with("openlit") {
        openlit(attrs, f, events);
        OPENLIT
    } else if attrs.contains_key("traceloop.span.kind")
        || attrs.contains_key("llm.request.type")
        || attrs.keys().any(|k| k.starts_with("traceloop.association.properties."))
    {
        openllmetry(attrs, f, events);
        OPENLLMETRY
    } else if attrs.contains_key("gen_ai.operation.name")
        || attrs.contains_key("gen_ai.system")
        || attrs.contains_key("gen_ai.provider.name")
        || attrs.contains_key("gen_ai.request.model")
    {
        genai(attrs, f, events);
        GENAI
    } else {
        UNKNOWN
    }
}

fn or_str(a: &str, b: impl FnOnce() -> String) -> String {
    if a.is_empty() { b() } else { a.to_string() }
}

// -- OpenInference -------------------------------------------------------------------------------

fn oi_kind(span_kind: &str) -> &'static str {
    match span_kind.to_uppercase().as_str() {
        "LLM" | "DECISION" => "LLM",
        "TOOL" => "TOOL",
        "RETRIEVER" => "RETRIEVER",
        "EMBEDDING" => "EMBEDDING",
        "RERANKER" => "RERANKER",
        "AGENT" => "AGENT",
        "CHAIN" | "PROMPT" => "CHAIN",
        "GUARDRAIL" => "GUARDRAIL",
        "EVALUATOR" => "EVALUATOR",
        _ => "UNKNOWN",
    }
}

fn oi_contents(attrs: &Attrs, base: &str) -> Option<Value> {
    let mut parts: Vec<Value> = Vec::new();
    let mut j = 0;
    loop {
        let ptype = attrs.s(&format!("{base}.{j}.message_content.type"));
        let text = attrs.s(&format!("{base}.{j}.message_content.text"));
        let image = attrs.s(&format!("{base}.{j}.message_content.image.image.url"));
        if ptype.is_none() && text.is_none() && image.is_none() {
            break;
        }
        let mut m = Map::new();
        if let Some(url) = image {
            m.insert("type".into(), s("image"));
            m.insert("url".into(), s(url));
        } else {
            m.insert("type".into(), s(ptype.filter(|t| !t.is_empty()).unwrap_or("text")));
            m.insert("text".into(), s(text.unwrap_or("")));
        }
        parts.push(Value::Object(m));
        j += 1;
    }
    if parts.is_empty() {
        return None;
    }
    if parts.len() == 1 && get(&parts[0], "type").and_then(Value::as_str) == Some("text") {
        return get(&parts[0], "text").cloned();
    }
    Some(Value::Array(parts))
}

/// Indexed tool calls ``{prefix}.{k}.{name|id|arguments suffix}``, until one has neither a name
/// nor an id (OpenInference and the legacy GenAI attributes differ only in the suffixes).
fn indexed_tool_calls(attrs: &Attrs, prefix: &str, [name_suffix, id_suffix, arguments_suffix]: [&str; 3]) -> Vec<Value> {
    let mut calls = Vec::new();
    for k in 0.. {
        let mut key = KeyBuf::new(prefix, k);
        let name = attrs.s(key.with(name_suffix));
        let cid = attrs.s(key.with(id_suffix));
        if name.is_none() && cid.is_none() {
            break;
        }
        let arguments = parse_arguments_str(attrs.s(key.with(arguments_suffix)));
        calls.push(tool_call(s(cid.unwrap_or("")), s(name.unwrap_or("")), arguments));
    }
    calls
}

const OI_CALL: [&str; 3] = ["tool_call.function.name", "tool_call.id", "tool_call.function.arguments"];

/// ``{prefix}.{i}.`` followed by suffixes, built in one buffer (no allocation per probe).
struct KeyBuf {
    buf: String,
    base: usize,
}

impl KeyBuf {
    fn new(prefix: &str, i: usize) -> Self {
        use std::fmt::Write;
        let mut buf = String::with_capacity(prefix.len() + 64);
        let _ = write!(buf, "{prefix}.{i}.");
        let base = buf.len();
        KeyBuf { buf, base }
    }
    fn with(&mut self, suffix: &str) -> &str {
        self.buf.truncate(self.base);
        self.buf.push_str(suffix);
        &self.buf
    }
    fn base(&self) -> &str {
        &self.buf[..self.base]
    }
}

/// Indexed OpenInference messages under ``prefix`` in canonical form, or None.
pub fn oi_messages(attrs: &Attrs, prefix: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut key = KeyBuf::new(prefix, i);
        let role = attrs.s(key.with("message.role"));
        let mut content: Option<Value> = attrs.s(key.with("message.content")).map(s);
        if content.is_none()
            && (attrs.has(key.with("message.contents.0.message_content.type"))
                || attrs.has(key.with("message.contents.0.message_content.text"))
                || attrs.has(key.with("message.contents.0.message_content.image.image.url")))
        {
            content = oi_contents(attrs, &format!("{}message.contents", key.base()));
        }
        let calls = if attrs.has(key.with("message.tool_calls.0.tool_call.function.name"))
            || attrs.has(key.with("message.tool_calls.0.tool_call.id"))
        {
            indexed_tool_calls(attrs, &format!("{}message.tool_calls", key.base()), OI_CALL)
        } else {
            Vec::new()
        };
        if role.is_none() && content.is_none() && calls.is_empty() {
            // a gap is possible when content capture is off for one message
            if !attrs.has(KeyBuf::new(prefix, i + 1).with("message.role")) {
                break;
            }
            i += 1;
            continue;
        }
        let mut msg = Map::new();
        msg.insert("role".into(), s(role.filter(|r| !r.is_empty()).unwrap_or("unknown")));
        if let Some(c) = content.filter(truthy) {
            msg.insert("content".into(), c);
        }
        if !calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(id) = attrs.nz(key.with("message.tool_call_id")) {
            msg.insert("tool_call_id".into(), s(id));
        }
        if let Some(name) = attrs.nz(key.with("message.name")) {
            msg.insert("name".into(), s(name));
        }
        out.push(Value::Object(msg));
        i += 1;
    }
    if out.is_empty() { None } else { Some(out) }
}

fn oi_documents(attrs: &Attrs, prefix: &str) -> Option<Vec<(String, String, f64)>> {
    let mut docs = Vec::new();
    let mut i = 0;
    loop {
        let mut key = KeyBuf::new(prefix, i);
        let did = attrs.s(key.with("document.id"));
        let text = attrs.s(key.with("document.content"));
        if did.is_none() && text.is_none() {
            break;
        }
        let score = to_float(attrs.s(key.with("document.score"))).unwrap_or(f64::NAN);
        docs.push((did.unwrap_or("").to_string(), text.unwrap_or("").to_string(), score));
        i += 1;
    }
    if docs.is_empty() { None } else { Some(docs) }
}

/// ``llm.tools.N.tool.json_schema``, each parsed when it is JSON, and their texts as the key of
/// the canonical list (``Fields::tools_key``).
fn oi_tools(attrs: &Attrs) -> Option<(Vec<Value>, String)> {
    let mut tools = Vec::new();
    let mut texts = String::from("openinference");
    for i in 0.. {
        let mut key = KeyBuf::new("llm.tools", i);
        match attrs.s(key.with("tool.json_schema")) {
            Some(schema) => {
                tools.push(parse_arguments_str(Some(schema)));
                texts.push_str(&format!("\0{}:", schema.len()));
                texts.push_str(schema);
            }
            None => break,
        }
    }
    if tools.is_empty() { None } else { Some((tools, texts)) }
}

/// The ``system_fingerprint`` of the raw response OpenInference keeps in ``output.value``.
fn fingerprint_of_response(response: Option<&str>, f: &mut Fields) {
    let Some(response) = response.filter(|r| r.starts_with('{') && r.contains("\"system_fingerprint\"")) else { return };
    if let Some(fp) = top_level_string(response, "system_fingerprint") {
        f.system_fingerprint = fp;
    }
}

pub fn openinference(attrs: &Attrs, f: &mut Fields) {
    let kind = oi_kind(attrs.s("openinference.span.kind").unwrap_or(""));
    f.kind = kind.to_string();
    let answered = attrs.nz("llm.response.model_name").or_else(|| attrs.nz("llm.model_name")).unwrap_or("").to_string();
    let mut requested = attrs.nz("llm.request.model_name").unwrap_or("").to_string();
    let params = parse_json(attrs.s("llm.invocation_parameters"));
    if let Some(Value::Object(p)) = &params {
        add_params(f, params.as_ref());
        if requested.is_empty() {
            if let Some(Value::String(model)) = p.get("model") {
                requested = model.clone();
            }
        }
    }
    f.finish_reasons = attribute_reasons(attrs);
    f.request_model = if requested.is_empty() { answered.clone() } else { requested.clone() };
    f.response_model = if answered.is_empty() { requested } else { answered };
    if kind == "EMBEDDING" && f.request_model.is_empty() {
        f.request_model = attrs.or_empty("embedding.model_name");
        f.response_model = f.request_model.clone();
    }
    f.provider = attrs.nz("llm.provider").or_else(|| attrs.nz("llm.system")).unwrap_or("").to_string();
    // counts stay None (Fields' default) when absent
    for (key, count) in [
        ("llm.token_count.prompt", &mut f.input_tokens),
        ("llm.token_count.completion", &mut f.output_tokens),
        ("llm.token_count.prompt_details.cache_read", &mut f.cache_read_tokens),
        ("llm.token_count.prompt_details.cache_write", &mut f.cache_write_tokens),
        ("llm.token_count.completion_details.reasoning", &mut f.reasoning_tokens),
    ] {
        if let Some(v) = attrs.s(key) {
            *count = to_int(Some(v));
        }
    }
    if let Some(v) = attrs.s("llm.cost.total") {
        f.cost = to_float(Some(v));
    }
    f.session_id = attrs.nz("session.id").unwrap_or("").to_string();
    f.user_id = attrs.nz("user.id").unwrap_or("").to_string();
    f.agent_name = attrs.nz("agent.name").unwrap_or("").to_string();
    match kind {
        "LLM" => {
            f.operation = "chat".into();
            f.system_fingerprint = attrs
                .nz("openai.response.system_fingerprint")
                .map(str::to_string)
                .unwrap_or_else(|| attrs.or_empty("gen_ai.openai.response.system_fingerprint"));
            if f.system_fingerprint.is_empty() {
                fingerprint_of_response(attrs.s("output.value"), f);
            }
            f.input_messages = oi_messages(attrs, "llm.input_messages");
            f.output_messages = oi_messages(attrs, "llm.output_messages");
            match oi_tools(attrs) {
                Some((tools, texts)) => (f.tools, f.tools_key) = (Some(tools), Some(texts)),
                None => f.tools = request_tools(params.as_ref()),
            }
            if let Some(recorded) = attrs.s("input.value").filter(|v| v.starts_with('{')) {
                f.raw_request = Some(recorded.to_string()); // the SDK call's arguments, as JSON
            }
        }
        "TOOL" => {
            f.operation = "execute_tool".into();
            f.tool_name = attrs.nz("tool.name").map(str::to_string).unwrap_or_else(|| attrs.or_empty("tool_call.function.name"));
            f.tool_call_id = attrs.nz("tool_call.id").map(str::to_string).unwrap_or_else(|| attrs.or_empty("tool.id"));
            f.input_kind = "tool_arguments";
            f.output_kind = "tool_result";
        }
        "RETRIEVER" => {
            f.operation = "retrieve".into();
            f.documents = oi_documents(attrs, "retrieval.documents");
        }
        "RERANKER" => {
            f.operation = "rerank".into();
            f.documents = oi_documents(attrs, "reranker.output_documents");
        }
        "EMBEDDING" => f.operation = "embeddings".into(),
        "AGENT" => f.operation = "invoke_agent".into(),
        _ => {}
    }
    if f.input_messages.is_none() {
        f.input_value = attrs.s("input.value").map(s);
    }
    if f.output_messages.is_none() {
        f.output_value = attrs.s("output.value").map(s);
    }
}

// -- OpenTelemetry GenAI -------------------------------------------------------------------------

fn operation_kind(op: &str) -> Option<&'static str> {
    Some(match op {
        "chat" | "text_completion" | "generate_content" | "completion" | "responses" => "LLM",
        "embeddings" | "embedding" => "EMBEDDING",
        "execute_tool" => "TOOL",
        "invoke_agent" | "create_agent" => "AGENT",
        "retrieval" | "retrieve" | "vectordb" => "RETRIEVER",
        "rerank" => "RERANKER",
        "framework" | "workflow" => "CHAIN",
        _ => return None,
    })
}

fn join_texts(texts: &[Value], sep: &str) -> String {
    texts.iter().map(py_str).collect::<Vec<_>>().join(sep)
}

/// GenAI ``parts`` messages (``gen_ai.input.messages``) in canonical form.
pub fn from_parts(value: Option<&Value>) -> Option<Vec<Value>> {
    let Some(Value::Array(items)) = value else { return None };
    let mut out = Vec::new();
    for m in items {
        let Value::Object(mm) = m else { continue };
        if !mm.contains_key("parts") {
            if mm.contains_key("role") {
                if let Some(converted) = from_openai_messages(Some(&Value::Array(vec![m.clone()]))) {
                    out.extend(converted);
                }
            }
            continue;
        }
        let role = mm.get("role").cloned().unwrap_or_else(|| s(""));
        let mut texts: Vec<Value> = Vec::new();
        let mut others: Vec<Value> = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        let mut tool_call_id = s("");
        let mut response: Option<Value> = None;
        if let Some(Value::Array(parts)) = mm.get("parts") {
            for p in parts {
                let Value::Object(pm) = p else { continue };
                match pm.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(pm.get("content").cloned().unwrap_or_else(|| s(""))),
                    Some("tool_call") => {
                        let id = pm.get("id").filter(|v| truthy(v)).cloned().unwrap_or_else(|| s(""));
                        let name = pm.get("name").cloned().unwrap_or_else(|| s(""));
                        let args = parse_arguments(pm.get("arguments").cloned().unwrap_or_else(|| s("")));
                        calls.push(tool_call(id, name, args));
                    }
                    Some("tool_call_response") => {
                        tool_call_id = pm.get("id").filter(|v| truthy(v)).cloned().unwrap_or_else(|| s(""));
                        response = match pm.get("response") {
                            Some(r) => Some(r.clone()),
                            None => pm.get("result").cloned(),
                        }
                        .filter(|r| !r.is_null());
                    }
                    _ => others.push(p.clone()),
                }
            }
        }
        if let Some(r) = response {
            out.push(message(s("tool"), Some(Value::String(canonical_text(&r))), None, Some(tool_call_id), None));
            continue;
        }
        let content = if !others.is_empty() {
            let mut parts: Vec<Value> = texts
                .into_iter()
                .map(|t| {
                    let mut p = Map::new();
                    p.insert("type".into(), s("text"));
                    p.insert("text".into(), t);
                    Value::Object(p)
                })
                .collect();
            parts.extend(others);
            Some(Value::Array(parts))
        } else if texts.len() == 1 {
            texts.pop()
        } else if texts.is_empty() {
            None
        } else {
            Some(Value::String(join_texts(&texts, "\n")))
        };
        out.push(message(role, content, Some(calls), None, mm.get("name").cloned()));
    }
    if out.is_empty() { None } else { Some(out) }
}

fn system_instructions(value: Option<Value>) -> Option<Value> {
    match value? {
        Value::Array(items) => {
            let texts: Vec<Value> = items
                .iter()
                .filter(|p| get(p, "type").and_then(Value::as_str) == Some("text"))
                .map(|p| get(p, "content").cloned().unwrap_or_else(|| s("")))
                .collect();
            if texts.is_empty() {
                None
            } else {
                Some(message(s("system"), Some(Value::String(join_texts(&texts, "\n"))), None, None, None))
            }
        }
        Value::String(v) if !v.is_empty() => Some(message(s("system"), Some(Value::String(v)), None, None, None)),
        _ => None,
    }
}

/// Legacy ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_calls.K.*`` messages.
fn indexed(attrs: &Attrs, prefix: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let base = format!("{prefix}.{i}.");
        let role = attrs.s(&format!("{base}role"));
        let mut content: Option<Value> = attrs.s(&format!("{base}content")).map(s);
        let calls = indexed_tool_calls(attrs, &format!("{base}tool_calls"), ["name", "id", "arguments"]);
        if role.is_none() && content.is_none() && calls.is_empty() {
            break;
        }
        if let Some(Value::String(text)) = &content {
            if text.starts_with('[') {
                if let Some(parsed @ Value::Array(_)) = parse_json(Some(text)) {
                    let mut m = Map::new();
                    m.insert("role".into(), s(role.unwrap_or("")));
                    m.insert("content".into(), parsed);
                    if let Some(converted) = from_openai_messages(Some(&Value::Array(vec![Value::Object(m)]))) {
                        content = get(&converted[0], "content").cloned();
                    }
                }
            }
        }
        let call_id = attrs.s(&format!("{base}tool_call_id")).map(s);
        out.push(message(s(role.unwrap_or("")), content, Some(calls), call_id, None));
        i += 1;
    }
    if out.is_empty() { None } else { Some(out) }
}

fn event_messages(value: Option<&Value>) -> Option<Vec<Value>> {
    let parsed = match value {
        Some(Value::String(text)) => parse_json(Some(text)),
        other => other.cloned(),
    };
    from_parts(parsed.as_ref()).or_else(|| from_openai_messages(parsed.as_ref()))
}

/// Legacy content events: ``gen_ai.content.prompt`` / ``gen_ai.content.completion``.
fn from_events(events: &[Event], f: &mut Fields) {
    if events.is_empty() {
        return;
    }
    let mut inputs: Vec<Value> = Vec::new();
    let mut outputs: Vec<Value> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for ev in events {
        let name = ev.name.as_str();
        let ea = &ev.attributes;
        if name == "gen_ai.choice" {
            if let Some(Value::String(reason)) = ea.get("finish_reason") {
                if !reason.is_empty() {
                    reasons.push(reason.clone());
                }
            }
        }
        if name == "gen_ai.content.prompt" && f.input_messages.is_none() {
            let value = ea.get("gen_ai.prompt");
            if let Some(msgs) = event_messages(value) {
                inputs.extend(msgs);
            } else if let Some(v) = value.filter(|v| truthy(v)) {
                inputs.push(message(s("user"), Some(v.clone()), None, None, None));
            }
        } else if name == "gen_ai.content.completion" && f.output_messages.is_none() {
            let value = ea.get("gen_ai.completion");
            if let Some(msgs) = event_messages(value) {
                outputs.extend(msgs);
            } else if let Some(v) = value.filter(|v| truthy(v)) {
                outputs.push(message(s("assistant"), Some(v.clone()), None, None, None));
            }
        } else if name.starts_with("gen_ai.") && name.ends_with(".message") && f.input_messages.is_none() {
            let (start, end) = ("gen_ai.".len(), name.len() - ".message".len());
            let role = if start < end { &name[start..end] } else { "" };
            if ea.contains_key("content") {
                inputs.push(message(s(role), ea.get("content").cloned(), None, None, None));
            }
        } else if name == "gen_ai.choice" && f.output_messages.is_none() && ea.contains_key("content") {
            outputs.push(message(s("assistant"), ea.get("content").cloned(), None, None, None));
        }
    }
    if !inputs.is_empty() {
        f.input_messages = Some(inputs);
    }
    if !outputs.is_empty() {
        f.output_messages = Some(outputs);
    }
    if !reasons.is_empty() && f.finish_reasons.is_none() {
        f.finish_reasons = Some(reasons);
    }
}

/// ``gen_ai.request.*`` (and the older ``gen_ai.openai.request.*``) parameters of a model call
/// (LLM or EMBEDDING span), in attribute order; the model has a column of its own.
fn genai_params(attrs: &Attrs, f: &mut Fields) {
    for (key, value) in attrs {
        let name = if let Some(rest) = key.strip_prefix("gen_ai.request.") {
            rest
        } else if let Some(rest) = key.strip_prefix("gen_ai.openai.request.") {
            rest
        } else {
            continue;
        };
        set_param(f, name, scalar(value), false);
    }
}

/// Finish reasons of ``parts`` output messages (``{"role", "parts", "finish_reason"}``).
fn message_reasons(parsed: Option<&Value>) -> Option<Vec<String>> {
    let Some(Value::Array(items)) = parsed else { return None };
    let reasons: Vec<String> = items
        .iter()
        .filter_map(|m| get(m, "finish_reason").and_then(Value::as_str).filter(|r| !r.is_empty()).map(str::to_string))
        .collect();
    if reasons.is_empty() { None } else { Some(reasons) }
}

/// Finish reasons of legacy indexed completions (``gen_ai.completion.N.finish_reason``).
fn indexed_reasons(attrs: &Attrs, count: usize) -> Option<Vec<String>> {
    let reasons: Vec<String> = (0..count)
        .filter_map(|i| attrs.nz(KeyBuf::new("gen_ai.completion", i).with("finish_reason")).map(str::to_string))
        .collect();
    if reasons.is_empty() { None } else { Some(reasons) }
}

fn int_of(attrs: &Attrs, a: &str, b: &str) -> Option<i64> {
    to_int(attrs.nz(a).or_else(|| attrs.s(b)))
}

pub fn genai(attrs: &Attrs, f: &mut Fields, events: &[Event]) {
    let op = attrs.s("gen_ai.operation.name").unwrap_or("");
    if f.kind.is_empty() || f.kind == "UNKNOWN" {
        f.kind = operation_kind(op)
            .unwrap_or(if attrs.contains_key("gen_ai.request.model") { "LLM" } else { "UNKNOWN" })
            .to_string();
    }
    if f.operation.is_empty() {
        f.operation = op.to_string();
    }
    if f.provider.is_empty() {
        f.provider = attrs.nz("gen_ai.provider.name").map(str::to_string).unwrap_or_else(|| attrs.or_empty("gen_ai.system"));
    }
    if f.request_model.is_empty() {
        f.request_model = attrs.or_empty("gen_ai.request.model");
    }
    if f.response_model.is_empty() {
        f.response_model = or_str(attrs.s("gen_ai.response.model").unwrap_or(""), || f.request_model.clone());
    }
    if f.request_model.is_empty() {
        f.request_model = f.response_model.clone();
    }
    if f.system_fingerprint.is_empty() {
        f.system_fingerprint = attrs
            .nz("openai.response.system_fingerprint")
            .map(str::to_string)
            .unwrap_or_else(|| attrs.or_empty("gen_ai.openai.response.system_fingerprint"));
    }
    if f.input_tokens.is_none() {
        f.input_tokens = int_of(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens");
    }
    if f.output_tokens.is_none() {
        f.output_tokens = int_of(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens");
    }
    if f.cache_read_tokens.is_none() {
        f.cache_read_tokens = int_of(attrs, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens");
    }
    if f.cache_write_tokens.is_none() {
        f.cache_write_tokens =
            int_of(attrs, "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens");
    }
    if f.reasoning_tokens.is_none() {
        f.reasoning_tokens = int_of(attrs, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens");
    }
    if f.cost.is_none() {
        f.cost = to_float(attrs.s("gen_ai.usage.cost"));
    }
    if f.session_id.is_empty() {
        f.session_id = attrs.nz("gen_ai.conversation.id").map(str::to_string).unwrap_or_else(|| attrs.or_empty("session.id"));
    }
    if f.user_id.is_empty() {
        f.user_id = attrs.or_empty("user.id");
    }
    if f.agent_name.is_empty() {
        f.agent_name = attrs.or_empty("gen_ai.agent.name");
    }
    if f.kind == "TOOL" {
        if f.tool_name.is_empty() {
            f.tool_name = attrs.or_empty("gen_ai.tool.name");
        }
        if f.tool_call_id.is_empty() {
            f.tool_call_id = attrs.or_empty("gen_ai.tool.call.id");
        }
        if f.input_value.is_none() {
            f.input_value = attrs.s("gen_ai.tool.call.arguments").map(s);
        }
        if f.output_value.is_none() {
            f.output_value = attrs.s("gen_ai.tool.call.result").map(s);
        }
        f.input_kind = "tool_arguments";
        f.output_kind = "tool_result";
    }
    if f.input_messages.is_none() {
        if let Some(raw) = attrs.s("gen_ai.input.messages") {
            f.input_messages = from_parts(parse_json(Some(raw)).as_ref());
        }
    }
    if f.input_messages.is_none() {
        f.input_messages = indexed(attrs, "gen_ai.prompt");
    }
    if f.kind == "LLM" || f.kind == "EMBEDDING" {
        genai_params(attrs, f);
    }
    if f.finish_reasons.is_none() {
        f.finish_reasons = attribute_reasons(attrs);
    }
    if f.output_messages.is_none() {
        if let Some(raw) = attrs.s("gen_ai.output.messages") {
            let parsed = parse_json(Some(raw));
            f.output_messages = from_parts(parsed.as_ref());
            if f.finish_reasons.is_none() {
                f.finish_reasons = message_reasons(parsed.as_ref());
            }
        }
    }
    if f.output_messages.is_none() {
        f.output_messages = indexed(attrs, "gen_ai.completion");
        if let Some(n) = f.output_messages.as_ref().map(Vec::len) {
            if f.finish_reasons.is_none() {
                f.finish_reasons = indexed_reasons(attrs, n);
            }
        }
    }
    from_events(events, f);
    let raw = attrs.s("gen_ai.system_instructions");
    let instructions = parse_json(raw).filter(truthy).or_else(|| raw.map(s));
    if let Some(system) = system_instructions(instructions) {
        let msgs = f.input_messages.take().unwrap_or_default();
        if msgs.iter().any(|m| get(m, "role").and_then(Value::as_str) == Some("system")) {
            f.input_messages = Some(msgs);
        } else {
            let mut all = Vec::with_capacity(msgs.len() + 1);
            all.push(system);
            all.extend(msgs);
            f.input_messages = Some(all);
        }
    }
    if f.tools.is_none() {
        let text = attrs.s("gen_ai.tool.definitions");
        if let Some(Value::Array(tools)) = parse_json(text) {
            f.tools = Some(tools);
            f.tools_key = text.map(|t| format!("otel_genai\0{t}"));
        }
    }
}

// -- Langfuse ------------------------------------------------------------------------------------

fn langfuse_kind(t: &str) -> &'static str {
    match t {
        "generation" => "LLM",
        "span" | "chain" => "CHAIN",
        "agent" => "AGENT",
        "tool" => "TOOL",
        "retriever" => "RETRIEVER",
        "embedding" => "EMBEDDING",
        "evaluator" => "EVALUATOR",
        "guardrail" => "GUARDRAIL",
        "event" => "UNKNOWN",
        _ => "",
    }
}

/// A number as Python's ``isinstance(v, (int, float))`` sees it (booleans count).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)).or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn first_int(d: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| d.get(*k).and_then(as_int))
}

fn details(usage: &Map<String, Value>, a: &str, b: &str) -> Value {
    usage.get(a).filter(|v| truthy(v)).or_else(|| usage.get(b).filter(|v| truthy(v))).cloned().unwrap_or_else(|| Value::Object(Map::new()))
}

pub fn langfuse(attrs: &Attrs, f: &mut Fields, events: &[Event], span_name: &str) {
    f.kind = langfuse_kind(attrs.s("langfuse.observation.type").unwrap_or("")).to_string();
    genai(attrs, f, events);
    let model = attrs.s("langfuse.observation.model.name").unwrap_or("");
    if f.request_model.is_empty() {
        f.request_model = model.to_string();
    }
    if f.response_model.is_empty() {
        f.response_model = model.to_string();
    }
    if let Some(Value::Object(mut usage)) = parse_json(attrs.s("langfuse.observation.usage_details")) {
        let details_in = details(&usage, "prompt_tokens_details", "input_token_details");
        let details_out = details(&usage, "completion_tokens_details", "output_token_details");
        if let Value::Object(d) = &details_in {
            let v = d.get("cached_tokens").or_else(|| d.get("cache_read")).cloned().unwrap_or(Value::Null);
            usage.insert("input_cached_tokens".into(), v);
        }
        if let Value::Object(d) = &details_out {
            let v = d.get("reasoning_tokens").or_else(|| d.get("reasoning")).cloned().unwrap_or(Value::Null);
            usage.insert("output_reasoning_tokens".into(), v);
        }
        if f.input_tokens.is_none() {
            f.input_tokens = first_int(&usage, &["input", "prompt_tokens", "input_tokens"]);
        }
        if f.output_tokens.is_none() {
            f.output_tokens = first_int(&usage, &["output", "completion_tokens", "output_tokens"]);
        }
        if f.cache_read_tokens.is_none() {
            f.cache_read_tokens = first_int(&usage, &["input_cached_tokens", "cache_read_input_tokens", "input_cache_read"]);
        }
        if f.reasoning_tokens.is_none() {
            f.reasoning_tokens = first_int(&usage, &["output_reasoning_tokens", "reasoning_tokens", "output_reasoning"]);
        }
    }
    if let Some(Value::Object(cost)) = parse_json(attrs.s("langfuse.observation.cost_details")) {
        if f.cost.is_none() {
            if let Some(total) = cost.get("total").and_then(as_number) {
                f.cost = Some(total);
            } else if !cost.is_empty() && cost.values().all(|v| as_number(v).is_some()) {
                f.cost = Some(cost.values().filter_map(as_number).sum());
            }
        }
    }
    add_params(f, parse_json(attrs.s("langfuse.observation.model.parameters")).as_ref()); // over gen_ai.request.*
    if f.finish_reasons.is_none() {
        f.finish_reasons = attrs.nz("langfuse.observation.metadata.finish_reason").map(|r| vec![r.to_string()]);
    }
    if f.user_id.is_empty() {
        f.user_id = attrs.nz("langfuse.user.id").map(str::to_string).unwrap_or_else(|| attrs.or_empty("user.id"));
    }
    if f.session_id.is_empty() {
        f.session_id = attrs.nz("langfuse.session.id").map(str::to_string).unwrap_or_else(|| attrs.or_empty("session.id"));
    }
    let raw_in = attrs.s("langfuse.observation.input");
    let raw_out = attrs.s("langfuse.observation.output");
    if f.kind == "LLM" {
        let need_messages = f.input_messages.as_ref().is_none_or(|m| m.is_empty());
        let recorded = if need_messages || f.tools.is_none() { parse_json(raw_in) } else { None };
        if need_messages {
            f.input_messages = from_openai_messages(recorded.as_ref());
        }
        if f.output_messages.as_ref().is_none_or(|m| m.is_empty()) {
            f.output_messages = from_openai_messages(parse_json(raw_out).as_ref());
        }
        if f.tools.is_none() {
            f.tools = request_tools(recorded.as_ref()); // the OpenAI integration records them with the messages
        }
    }
    if f.kind == "TOOL" {
        f.tool_entity(span_name);
    }
    if f.kind == "AGENT" && f.agent_name.is_empty() {
        f.agent_name = span_name.to_string();
    }
    if f.input_messages.is_none() && f.input_value.is_none() {
        f.input_value = decorated_value(raw_in);
    }
    if f.output_messages.is_none() && f.output_value.is_none() {
        f.output_value = decorated_value(raw_out);
    }
    if f.kind == "LLM" && f.operation.is_empty() {
        f.operation = "chat".into();
    }
}

// -- OpenLIT -------------------------------------------------------------------------------------

pub fn openlit(attrs: &Attrs, f: &mut Fields, events: &[Event]) {
    genai(attrs, f, events);
    // Older OpenLIT releases put flattened "role: text" transcripts in these attributes.
    if f.input_messages.is_none() {
        if let Some(p) = attrs.s("gen_ai.prompt") {
            f.input_messages = Some(vec![message(s("user"), Some(s(p)), None, None, None)]);
        }
    }
    if f.output_messages.is_none() {
        if let Some(c) = attrs.s("gen_ai.completion") {
            f.output_messages = Some(vec![message(s("assistant"), Some(s(c)), None, None, None)]);
        }
    }
}

// -- OpenLLMetry / Traceloop ---------------------------------------------------------------------

pub fn openllmetry(attrs: &Attrs, f: &mut Fields, events: &[Event]) {
    let span_kind = attrs.s("traceloop.span.kind").unwrap_or("");
    let kind = match span_kind {
        "workflow" | "task" => "CHAIN",
        "agent" => "AGENT",
        "tool" => "TOOL",
        _ => match attrs.s("llm.request.type").unwrap_or("") {
            "chat" | "completion" => "LLM",
            "embedding" => "EMBEDDING",
            "rerank" => "RERANKER",
            _ => "",
        },
    };
    f.kind = kind.to_string();
    genai(attrs, f, events);
    if f.session_id.is_empty() {
        f.session_id = attrs.or_empty("traceloop.association.properties.session_id");
    }
    if f.user_id.is_empty() {
        f.user_id = attrs.or_empty("traceloop.association.properties.user_id");
    }
    let name = attrs.s("traceloop.entity.name").unwrap_or("");
    if span_kind == "tool" {
        f.tool_entity(name);
    } else if span_kind == "agent" {
        if f.agent_name.is_empty() {
            f.agent_name = name.to_string();
        }
        if f.operation.is_empty() {
            f.operation = "invoke_agent".into();
        }
    }
    if !span_kind.is_empty() && f.input_value.is_none() && f.input_messages.is_none() {
        let value = decorated_value(attrs.s("traceloop.entity.input"));
        f.input_messages = if f.kind == "LLM" { from_openai_messages(value.as_ref()) } else { None };
        f.input_value = if f.input_messages.is_none() { value } else { None };
    }
    if !span_kind.is_empty() && f.output_value.is_none() && f.output_messages.is_none() {
        f.output_value = decorated_value(attrs.s("traceloop.entity.output"));
    }
    // request parameters of older releases, under their canonical names (after gen_ai.request.*)
    let model_call = f.kind == "LLM" || f.kind == "EMBEDDING";
    for (key, name) in [
        ("llm.frequency_penalty", "frequency_penalty"),
        ("llm.presence_penalty", "presence_penalty"),
        ("llm.top_k", "top_k"),
        ("llm.chat.stop_sequences", "stop_sequences"),
        ("llm.is_streaming", "stream"),
        ("llm.request.repetition_penalty", "repetition_penalty"),
    ] {
        if let Some(value) = attrs.s(key).filter(|_| model_call) {
            set_param(f, name, scalar(value), false);
        }
    }
    if f.tools.is_none() {
        let mut tools = Vec::new();
        for i in 0.. {
            let mut key = KeyBuf::new("llm.request.functions", i);
            let Some(name) = attrs.s(key.with("name")) else { break };
            let mut tool = Map::new();
            tool.insert("name".into(), s(name));
            if let Some(d) = attrs.s(key.with("description")) {
                tool.insert("description".into(), s(d));
            }
            if let Some(p) = attrs.s(key.with("parameters")) {
                tool.insert("parameters".into(), s(p));
            }
            tools.push(Value::Object(tool));
        }
        if !tools.is_empty() {
            f.tools = Some(tools);
        }
    }
}
