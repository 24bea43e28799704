//! Text forms that must match the Python pipeline byte for byte:
//!
//! * the canonical JSON of ``agentledger.schemas.canonical``: RFC 8785 (JCS), members sorted by
//!   UTF-16 code units, numbers as ECMAScript writes doubles (``ryu-js``), with that module's
//!   rule for integers a double cannot carry (written as a JSON string of their digits); the
//!   golden fixtures in ``schemas/canonical/fixtures.json`` hold both implementations to it;
//! * ``json.dumps(..., ensure_ascii=False)`` as the Python normalizer writes attribute values
//!   and events (insertion order, Python's ``float.__repr__`` notation, ``NaN``/``Infinity``);
//! * Python's ``repr(float)`` and ``str(value)``.

use base64::Engine;
use serde_json::Value;
use std::fmt::Write;

use crate::otlp::{any_value, AnyValue, KeyValue};

/// Shortest round-trip digits of a finite, non-zero ``x``: (negative, digits, decimal exponent
/// of the first digit).
fn shortest(x: f64) -> (bool, String, i32) {
    let mut s = String::with_capacity(32);
    let _ = write!(s, "{:e}", x);
    let (mantissa, exp) = s.split_once('e').expect("LowerExp always writes an exponent");
    let negative = mantissa.starts_with('-');
    let mut digits = String::with_capacity(mantissa.len());
    digits.extend(mantissa.chars().filter(|c| c.is_ascii_digit()));
    (negative, digits, exp.parse().expect("exponent is an integer"))
}

fn decimal(out: &mut String, negative: bool, digits: &str, exp: i32) {
    if negative {
        out.push('-');
    }
    let n = digits.len() as i32;
    if exp >= 0 {
        if n <= exp + 1 {
            out.push_str(digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    }
}

fn scientific(out: &mut String, negative: bool, digits: &str, exp: i32, pad_exponent: bool) {
    if negative {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    if pad_exponent {
        let _ = write!(out, "{:02}", exp.abs());
    } else {
        let _ = write!(out, "{}", exp.abs());
    }
}

/// Python's ``repr(x)`` for a finite float.
pub fn py_float_repr(out: &mut String, x: f64) {
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let (neg, digits, exp) = shortest(x);
    if (-4..16).contains(&exp) {
        decimal(out, neg, &digits, exp);
    } else {
        scientific(out, neg, &digits, exp, true);
    }
}

/// Python's ``repr`` notation, non-finite values spelled ``[nan, inf, -inf]``.
fn py_float_spelled(out: &mut String, x: f64, [nan, inf, neg_inf]: [&str; 3]) {
    if x.is_nan() {
        out.push_str(nan);
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { inf } else { neg_inf });
    } else {
        py_float_repr(out, x);
    }
}

/// Python's ``str(x)`` / ``repr(x)`` for any float (``inf``, ``nan``).
pub fn py_float_str(out: &mut String, x: f64) {
    py_float_spelled(out, x, ["nan", "inf", "-inf"]);
}

/// A float as ``json.dumps`` writes it.
fn py_json_float(out: &mut String, x: f64) {
    py_float_spelled(out, x, ["NaN", "Infinity", "-Infinity"]);
}

/// A double as RFC 8785 writes it (ECMAScript ``Number.prototype.toString``: ``-0`` as ``0``,
/// plain notation for 1e-6 <= |x| < 1e21); non-finite values, which JSON has no number for,
/// become ``null``.
fn jcs_float(out: &mut String, x: f64) {
    if x.is_finite() {
        out.push_str(ryu_js::Buffer::new().format_finite(x));
    } else {
        out.push_str("null");
    }
}

/// The largest integer of the I-JSON range (2^53 - 1).
const JCS_SAFE: u128 = (1 << 53) - 1;

/// An integer as ``agentledger.schemas.canonical`` writes it: itself within the I-JSON range;
/// beyond it, the number when the nearest double is written with exactly its digits, else a
/// JSON string of its digits (nothing rounded away).
fn jcs_integer(out: &mut String, n: i128) {
    if n.unsigned_abs() <= JCS_SAFE {
        let _ = write!(out, "{}", n);
        return;
    }
    let digits = n.to_string();
    let mut buffer = ryu_js::Buffer::new();
    let double = buffer.format_finite(n as f64); // rounds to nearest, ties to even, as Python's float(n)
    if double == digits {
        out.push_str(&digits);
    } else {
        json_str(out, &digits);
    }
}

fn jcs_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        jcs_integer(out, i128::from(i));
    } else if let Some(u) = n.as_u64() {
        jcs_integer(out, i128::from(u));
    } else {
        jcs_float(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// Member names in RFC 8785 order: by their UTF-16 code units (UTF-8 byte order differs only
/// where U+E000..U+FFFF meets U+10000 and above).
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// True when one of the 8 bytes of ``w`` is a control character, ``"`` or ``\\`` (SWAR test).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (control | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\')))) != 0
}

/// A JSON string literal; non-ASCII kept, control characters escaped (as both ``json`` with
/// ``ensure_ascii=False`` and RFC 8785 do: ``\b \t \n \f \r`` or ``\u00xx``).
pub fn json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // runs of 8 bytes with nothing to escape are skipped whole
        if i + 8 <= bytes.len() {
            let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn number(out: &mut String, n: &serde_json::Number, float: fn(&mut String, f64)) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{}", i);
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{}", u);
    } else {
        float(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// The canonical JSON of a value (RFC 8785; see the module comment).
pub fn canonical(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => jcs_number(out, n),
        Value::String(s) => json_str(out, s),
        Value::Array(items) => canonical_items(out, items),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| utf16_order(a, b));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(out, k);
                out.push(':');
                canonical(out, &map[k.as_str()]);
            }
            out.push('}');
        }
    }
}

/// The canonical JSON of a list of values.
pub fn canonical_array(items: &[Value]) -> String {
    let mut out = String::with_capacity(256);
    canonical_items(&mut out, items);
    out
}

fn canonical_items(out: &mut String, items: &[Value]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        canonical(out, item);
    }
    out.push(']');
}

pub fn canonical_string(v: &Value) -> String {
    let mut out = String::new();
    canonical(&mut out, v);
    out
}

/// ``canonical_text``: strings as they are, anything else as canonical JSON.
pub fn canonical_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => canonical_string(other),
    }
}

/// ``json.dumps(v, ensure_ascii=False)`` with the given separators, keys in insertion order.
pub fn py_dumps(out: &mut String, v: &Value, compact: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n, py_json_float),
        Value::String(s) => json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if compact { "," } else { ", " });
                }
                py_dumps(out, item, compact);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(if compact { "," } else { ", " });
                }
                json_str(out, k);
                out.push_str(if compact { ":" } else { ": " });
                py_dumps(out, item, compact);
            }
            out.push('}');
        }
    }
}

/// Python's ``str(value)`` for the value ``orjson.loads`` would give (containers approximated by
/// their JSON).
pub fn py_str(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => number(&mut out, n, py_float_str),
        Value::String(s) => out.push_str(s),
        other => py_dumps(&mut out, other, false),
    }
    out
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// ``anyvalue_to_python``: an AnyValue as a JSON value (non-finite doubles become null).
pub fn any_to_value(v: Option<&AnyValue>) -> Value {
    let Some(inner) = v.and_then(|v| v.value.as_ref()) else { return Value::Null };
    match inner {
        any_value::Value::StringValue(s) => Value::String(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        any_value::Value::ArrayValue(a) => Value::Array(a.values.iter().map(|x| any_to_value(Some(x))).collect()),
        any_value::Value::KvlistValue(kv) => Value::Object(kvlist_to_map(&kv.values)),
        any_value::Value::BytesValue(b) => Value::String(b64(b)),
    }
}

pub fn kvlist_to_map(kvs: &[KeyValue]) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::with_capacity(kvs.len());
    for kv in kvs {
        map.insert(kv.key.clone(), any_to_value(kv.value.as_ref()));
    }
    map
}

/// ``json.dumps`` of ``anyvalue_to_python(v)``, written straight from the message (keeps
/// ``NaN`` and ``Infinity`` as Python writes them).
pub fn write_any_json(out: &mut String, v: Option<&AnyValue>, compact: bool) {
    let Some(inner) = v.and_then(|v| v.value.as_ref()) else {
        out.push_str("null");
        return;
    };
    match inner {
        any_value::Value::StringValue(s) => json_str(out, s),
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => {
            let _ = write!(out, "{}", i);
        }
        any_value::Value::DoubleValue(d) => py_json_float(out, *d),
        any_value::Value::ArrayValue(a) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(if compact { "," } else { ", " });
                }
                write_any_json(out, Some(item), compact);
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(kv) => write_kvlist_json(out, &kv.values, compact),
        any_value::Value::BytesValue(b) => json_str(out, &b64(b)),
    }
}

/// A key/value list as the JSON of the Python dict built from it (a repeated key keeps its
/// first place and its last value).
pub fn write_kvlist_json(out: &mut String, kvs: &[KeyValue], compact: bool) {
    let mut order: indexmap::IndexMap<&str, Option<&AnyValue>> = indexmap::IndexMap::with_capacity(kvs.len());
    for kv in kvs {
        order.insert(kv.key.as_str(), kv.value.as_ref());
    }
    out.push('{');
    for (i, (k, v)) in order.into_iter().enumerate() {
        if i > 0 {
            out.push_str(if compact { "," } else { ", " });
        }
        json_str(out, k);
        out.push_str(if compact { ":" } else { ": " });
        write_any_json(out, v, compact);
    }
    out.push('}');
}

/// ``any_to_str``, borrowing a string value.
pub fn any_to_cow(v: Option<&AnyValue>) -> std::borrow::Cow<'_, str> {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        _ => std::borrow::Cow::Owned(any_to_str(v)),
    }
}

/// ``anyvalue_to_str``: an AnyValue as the string stored in the attribute maps.
pub fn any_to_str(v: Option<&AnyValue>) -> String {
    let Some(inner) = v.and_then(|v| v.value.as_ref()) else { return String::new() };
    match inner {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => {
            let mut out = String::new();
            py_float_str(&mut out, *d);
            out
        }
        any_value::Value::BoolValue(b) => (if *b { "true" } else { "false" }).to_string(),
        any_value::Value::BytesValue(b) => b64(b),
        _ => {
            let mut out = String::new();
            write_any_json(&mut out, v, true);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut s = String::new();
        py_float_repr(&mut s, x);
        s
    }

    fn jcs(text: &str) -> String {
        canonical_string(&serde_json::from_str(text).expect("JSON"))
    }

    #[test]
    fn python_float_repr() {
        for (x, want) in [
            (1.0, "1.0"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (0.0001, "0.0001"),
            (1e-5, "1e-05"), (1.2345678901234568e20, "1.2345678901234568e+20"), (0.1, "0.1"),
            (-0.0, "-0.0"), (1.5e300, "1.5e+300"), (12345.678, "12345.678"), (5e-324, "5e-324"),
        ] {
            assert_eq!(repr(x), want, "{x}");
        }
    }

    #[test]
    fn json_strings_escape_what_python_escapes() {
        let mut out = String::new();
        let text = "plain text long enough for words \"q\" back\\slash \n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é 🧾 end";
        json_str(&mut out, text);
        assert_eq!(
            out,
            "\"plain text long enough for words \\\"q\\\" back\\\\slash \\n\\t\\r\\b\\f\\u0001\\u001f\u{7f} é 🧾 end\""
        );
        for n in 0..20 {
            let mut a = String::new();
            let s = format!("{}\"{}", "x".repeat(n), "y".repeat(n));
            json_str(&mut a, &s);
            assert_eq!(a, format!("\"{}\\\"{}\"", "x".repeat(n), "y".repeat(n)));
        }
    }

    #[test]
    fn rfc8785_numbers() {
        for (x, want) in [
            (1.0, "1"), (1e16, "10000000000000000"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
            (0.0001, "0.0001"), (1e-6, "0.000001"), (1e-7, "1e-7"), (-0.0, "0"), (f64::NAN, "null"),
            (333333333.33333329, "333333333.3333333"), (1e30, "1e+30"), (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"), (295147905179352830000.0, "295147905179352830000"),
        ] {
            let mut s = String::new();
            jcs_float(&mut s, x);
            assert_eq!(s, want, "{x}");
        }
        assert_eq!(jcs("[9007199254740991,9007199254740992,9007199254740993,-9223372036854775808]"),
                   r#"[9007199254740991,9007199254740992,"9007199254740993","-9223372036854775808"]"#);
        assert_eq!(jcs("[10000000000000000000,18446744073709551615,18446744073709551616]"),
                   r#"[10000000000000000000,"18446744073709551615",18446744073709552000]"#);
    }

    #[test]
    fn rfc8785_member_order_is_utf16() {
        assert_eq!(jcs(r#"{"\ufffd":1,"\ud83d\ude00":2,"b":3,"a":4,"\ue000":5}"#),
                   "{\"a\":4,\"b\":3,\"\u{1F600}\":2,\"\u{e000}\":5,\"\u{fffd}\":1}");
    }
}
