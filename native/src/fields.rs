//! What the convention extractors find on one span, and the canonical message shape
//! (see ``agentledger/pipeline/normalize/fields.py``, which this follows rule for rule).

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;
use serde_json::{Map, Value};

/// A span's attributes as the Python normalizer's dict: insertion order, a repeated key keeps
/// its first place and its last value.
pub type Attrs<'a> = IndexMap<&'a str, &'a str, FxBuildHasher>;

pub trait Get {
    fn s(&self, key: &str) -> Option<&str>;
    fn has(&self, key: &str) -> bool {
        self.s(key).is_some()
    }
    /// ``attrs.get(key) or ""``-style lookup: the value when present and non-empty.
    fn nz(&self, key: &str) -> Option<&str> {
        self.s(key).filter(|v| !v.is_empty())
    }
    fn or_empty(&self, key: &str) -> String {
        self.s(key).unwrap_or("").to_string()
    }
}

impl Get for Attrs<'_> {
    #[inline]
    fn s(&self, key: &str) -> Option<&str> {
        self.get(key).copied()
    }
}

/// One event as the Python normalizer sees it: name and attributes (Python values).
pub struct Event {
    pub name: String,
    pub attributes: Map<String, Value>,
}

#[derive(Default)]
pub struct Fields {
    pub kind: String,
    pub operation: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub system_fingerprint: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub tool_name: String,
    pub tool_call_id: String,
    pub input_messages: Option<Vec<Value>>,
    pub output_messages: Option<Vec<Value>>,
    pub input_value: Option<Value>,
    pub output_value: Option<Value>,
    pub input_kind: &'static str,
    pub output_kind: &'static str,
    pub documents: Option<Vec<(String, String, f64)>>,
    pub session_id: String,
    pub user_id: String,
    pub agent_name: String,
    /// Tools offered, as recorded (``canonical_tool`` makes each canonical).
    pub tools: Option<Vec<Value>>,
    /// The attribute text(s) ``tools`` were read from, when they were: the same text gives the
    /// same canonical list (the builder makes it once per batch).
    pub tools_key: Option<String>,
    /// Request parameters under their canonical names (empty: none recorded).
    pub params: Map<String, Value>,
    pub finish_reasons: Option<Vec<String>>,
    /// The request as the instrumentation recorded it (OpenInference ``input.value``).
    pub raw_request: Option<String>,
}

impl Fields {
    /// A tool span recorded by a function decorator: the entity's name names the tool when no
    /// convention attribute did; its input and output are the tool's arguments and result.
    pub fn tool_entity(&mut self, name: &str) {
        if self.tool_name.is_empty() {
            self.tool_name = name.to_string();
        }
        if self.operation.is_empty() {
            self.operation = "execute_tool".into();
        }
        self.input_kind = "tool_arguments";
        self.output_kind = "tool_result";
    }
}

/// Python truthiness of a value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// ``d.get(key)`` of a value that may not be a dict.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// ``value`` parsed as JSON, or None when it is absent or not JSON.
pub fn parse_json(value: Option<&str>) -> Option<Value> {
    let value = value?;
    let c = *value.as_bytes().first()?;
    if !matches!(c, b'[' | b'{' | b'"' | b'0'..=b'9' | b'-' | b't' | b'f' | b'n') {
        return None;
    }
    serde_json::from_str(value).ok()
}

/// Tool-call arguments in canonical form: parsed JSON when possible, else as given (``null``
/// text stays text, as Python's ``parse_json`` gives None for it).
pub fn parse_arguments(value: Value) -> Value {
    if let Value::String(s) = &value {
        if let Some(parsed) = parse_json(Some(s)).filter(|p| !p.is_null()) {
            return parsed;
        }
    }
    value
}

/// A value recorded as an attribute's text: its JSON value when the text is JSON (not ``null``),
/// else the text.
pub fn scalar(text: &str) -> Value {
    parse_json(Some(text)).filter(|p| !p.is_null()).unwrap_or_else(|| Value::String(text.to_string()))
}

pub fn parse_arguments_str(value: Option<&str>) -> Value {
    parse_arguments(Value::String(value.unwrap_or("").to_string()))
}

pub fn to_int(value: Option<&str>) -> Option<i64> {
    let v = value?;
    if v.is_empty() {
        return None;
    }
    let t = v.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i);
    }
    if t.contains('_') {
        if let Ok(i) = t.replace('_', "").parse::<i64>() {
            return Some(i);
        }
    }
    to_float(Some(v)).filter(|f| f.is_finite()).map(|f| f.trunc() as i64)
}

pub fn to_float(value: Option<&str>) -> Option<f64> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) {
        return v.parse::<f64>().ok();
    }
    let lower = v.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => return Some(if lower.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    v.replace('_', "").parse::<f64>().ok()
}

/// A canonical message with empty fields left out.
pub fn message(role: Value, content: Option<Value>, tool_calls: Option<Vec<Value>>, tool_call_id: Option<Value>, name: Option<Value>) -> Value {
    let mut msg = Map::new();
    msg.insert("role".into(), if truthy(&role) { role } else { Value::String("unknown".into()) });
    if let Some(c) = content {
        let empty = matches!(&c, Value::Null) || c.as_str() == Some("") || c.as_array().is_some_and(|a| a.is_empty());
        if !empty {
            msg.insert("content".into(), c);
        }
    }
    if let Some(calls) = tool_calls {
        if !calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(calls));
        }
    }
    if let Some(id) = tool_call_id {
        if truthy(&id) {
            msg.insert("tool_call_id".into(), id);
        }
    }
    if let Some(n) = name {
        if truthy(&n) {
            msg.insert("name".into(), n);
        }
    }
    Value::Object(msg)
}

pub fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

pub fn tool_call(id: Value, name: Value, arguments: Value) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), id);
    m.insert("name".into(), name);
    m.insert("arguments".into(), arguments);
    Value::Object(m)
}

fn text_part(text: Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), s("text"));
    m.insert("text".into(), text);
    Value::Object(m)
}

/// OpenAI content (string or list of parts) in canonical form.
fn openai_content(content: Option<&Value>) -> Option<Value> {
    let content = content?;
    let Value::Array(items) = content else { return Some(content.clone()) };
    let mut parts: Vec<Value> = Vec::with_capacity(items.len());
    for p in items {
        match p {
            Value::Object(m) => match m.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(text_part(m.get("text").cloned().unwrap_or_else(|| s("")))),
                Some("image_url") => {
                    let url = m.get("image_url");
                    let url = match url {
                        Some(Value::Object(u)) => u.get("url").cloned().unwrap_or_else(|| s("")),
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    let mut img = Map::new();
                    img.insert("type".into(), s("image"));
                    img.insert("url".into(), url);
                    parts.push(Value::Object(img));
                }
                _ => parts.push(p.clone()),
            },
            other => parts.push(text_part(Value::String(crate::pyjson::py_str(other)))),
        }
    }
    if parts.len() == 1 && get(&parts[0], "type").and_then(Value::as_str) == Some("text") {
        return parts.pop().and_then(|p| match p {
            Value::Object(mut m) => m.remove("text"),
            _ => None,
        });
    }
    Some(Value::Array(parts))
}

/// OpenAI chat-format messages (as Langfuse or entity inputs record them) in canonical form.
pub fn from_openai_messages(value: Option<&Value>) -> Option<Vec<Value>> {
    let mut value = value?;
    let single;
    if let Value::Object(m) = value {
        if let Some(msgs @ Value::Array(_)) = m.get("messages") {
            value = msgs;
        } else if m.contains_key("role") {
            single = [value.clone()];
            return convert_openai(&single);
        } else {
            return None;
        }
    }
    let Value::Array(items) = value else { return None };
    convert_openai(items)
}

fn convert_openai(items: &[Value]) -> Option<Vec<Value>> {
    if items.is_empty() || !items.iter().all(|m| m.as_object().is_some_and(|o| o.contains_key("role"))) {
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        let mut calls = Vec::new();
        if let Some(Value::Array(tcs)) = get(m, "tool_calls") {
            for tc in tcs {
                let empty = Value::Object(Map::new());
                let func = get(tc, "function").filter(|f| truthy(f)).unwrap_or(&empty);
                let name = get(func, "name").or_else(|| get(tc, "name")).cloned().unwrap_or_else(|| s(""));
                let arguments = get(func, "arguments").or_else(|| get(tc, "arguments")).cloned().unwrap_or_else(|| s(""));
                calls.push(tool_call(get(tc, "id").cloned().unwrap_or_else(|| s("")), name, parse_arguments(arguments)));
            }
        }
        out.push(message(
            get(m, "role").cloned().unwrap_or_else(|| s("")),
            openai_content(get(m, "content")),
            Some(calls),
            get(m, "tool_call_id").cloned(),
            get(m, "name").cloned(),
        ));
    }
    Some(out)
}

/// Inputs and outputs recorded by function decorators (Traceloop, Langfuse), unwrapped.
pub fn decorated_value(raw: Option<&str>) -> Option<Value> {
    let raw = raw?;
    let parsed = parse_json(Some(raw));
    match parsed {
        Some(Value::String(s)) => return Some(Value::String(s)),
        Some(Value::Object(m)) if !m.is_empty() && m.keys().all(|k| k == "args" || k == "kwargs") => {
            let args = m.get("args").filter(|a| truthy(a));
            let kwargs = m.get("kwargs").filter(|k| truthy(k));
            if let (Some(kw), None) = (kwargs, args) {
                return Some(kw.clone());
            }
            if let (Some(Value::Array(a)), None) = (args, kwargs) {
                if a.len() == 1 {
                    return Some(a[0].clone());
                }
            }
        }
        _ => {}
    }
    Some(Value::String(raw.to_string()))
}

// -- the canonical call: parameters, tools, finish reasons (agentledger/schemas/calls.py) -------

/// The canonical name of a request parameter (``PARAM_NAMES``).
pub fn canonical_param(name: &str) -> &str {
    match name {
        "stop" => "stop_sequences",
        "n" => "choice.count",
        "is_stream" => "stream",
        other => other,
    }
}

/// Record request parameter ``name`` (any spelling); an earlier value of the same canonical name
/// is kept unless ``replace``.
pub fn set_param(f: &mut Fields, name: &str, value: Value, replace: bool) {
    let name = canonical_param(name);
    if matches!(name, "model" | "messages" | "tools" | "functions") {
        return;
    }
    if replace || !f.params.contains_key(name) {
        f.params.insert(name.to_string(), value);
    }
}

/// The members of a JSON object of request parameters (later members and later objects win).
pub fn add_params(f: &mut Fields, recorded: Option<&Value>) {
    if let Some(Value::Object(m)) = recorded {
        for (name, value) in m {
            set_param(f, name, value.clone(), true);
        }
    }
}

/// The ``tools`` (then legacy ``functions``) of a recorded request or parameter object.
pub fn request_tools(recorded: Option<&Value>) -> Option<Vec<Value>> {
    let Some(Value::Object(m)) = recorded else { return None };
    let mut tools = Vec::new();
    for key in ["tools", "functions"] {
        if let Some(Value::Array(items)) = m.get(key) {
            tools.extend(items.iter().cloned());
        }
    }
    if tools.is_empty() { None } else { Some(tools) }
}

/// One tool definition, in whichever shape it was recorded, in the canonical shape; a tool
/// that is not a function, as recorded.
pub fn canonical_tool(value: &Value) -> Value {
    let Value::Object(v) = value else { return value.clone() };
    let src = match v.get("function") {
        Some(Value::Object(fm)) => fm,
        _ => {
            let flat = matches!(v.get("type"), None | Some(Value::Null)) || v.get("type").and_then(Value::as_str) == Some("function");
            if v.contains_key("input_schema") || flat {
                v
            } else {
                return value.clone();
            }
        }
    };
    let Some(Value::String(name)) = src.get("name") else { return value.clone() };
    let mut out = Map::new();
    out.insert("type".into(), s("function"));
    out.insert("name".into(), s(name));
    if let Some(Value::String(d)) = src.get("description") {
        if !d.is_empty() {
            out.insert("description".into(), s(d));
        }
    }
    let parameters = src.get("parameters").filter(|p| !p.is_null()).or_else(|| src.get("input_schema").filter(|p| !p.is_null()));
    if let Some(p) = parameters {
        out.insert("parameters".into(), parse_arguments(p.clone()));
    }
    if let Some(Value::Bool(b)) = src.get("strict") {
        out.insert("strict".into(), Value::Bool(*b));
    }
    Value::Object(out)
}

/// Finish reasons recorded as one attribute: a JSON array of strings (GenAI) or one reason.
pub fn reasons_of(value: Option<&str>) -> Option<Vec<String>> {
    let value = value.filter(|v| !v.is_empty())?;
    if value.starts_with('[') {
        if let Some(Value::Array(items)) = parse_json(Some(value)) {
            let reasons: Vec<String> = items.iter().filter_map(|r| r.as_str().filter(|r| !r.is_empty()).map(str::to_string)).collect();
            return if reasons.is_empty() { None } else { Some(reasons) };
        }
    }
    Some(vec![value.to_string()])
}

/// Finish reasons of the ``llm.finish_reason`` and ``gen_ai.response.finish_reasons`` attributes.
pub fn attribute_reasons(attrs: &Attrs) -> Option<Vec<String>> {
    let more = reasons_of(attrs.s("gen_ai.response.finish_reasons"));
    match attrs.nz("llm.finish_reason") {
        Some(reason) => {
            let mut all = vec![reason.to_string()];
            all.extend(more.unwrap_or_default());
            Some(all)
        }
        None => more,
    }
}

/// The string member ``key`` of the JSON object ``text`` (the last one when repeated), read
/// without building the object: the other members are only checked to be JSON. None when
/// ``text`` is not a JSON object or the member is not a string.
pub fn top_level_string(text: &str, key: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    struct Member<'k>(&'k str);

    impl<'de> Visitor<'de> for Member<'_> {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if name == self.0 {
                    found = Some(map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(match found {
                Some(Value::String(s)) => Some(s),
                _ => None,
            })
        }
    }

    impl<'de> DeserializeSeed<'de> for Member<'_> {
        type Value = Option<String>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let found = Member(key).deserialize(&mut de).ok()?;
    de.end().ok()?;
    found
}
