//! Reading typed values out of YAML nodes, with errors that name the origin, position, key
//! and the expected form.

use super::ConfigError;
use super::yaml::{Kind, Node};

pub(super) fn err(
    origin: &str,
    at: Option<&Node>,
    key: Option<&str>,
    message: String,
) -> ConfigError {
    ConfigError {
        origin: origin.to_string(),
        position: at.map(|n| (n.line, n.col)),
        key: key.map(str::to_string),
        message,
    }
}

pub(super) fn expected(origin: &str, v: &Node, key: &str, form: &str) -> ConfigError {
    err(
        origin,
        Some(v),
        Some(key),
        format!("expected {form}, found {}", v.describe()),
    )
}

/// The longest user text echoed in a message; longer text is cut with an ellipsis.
pub const MAX_ECHO: usize = 60;

/// `s`, cut to [`MAX_ECHO`] characters with an ellipsis (messages never echo unbounded input).
pub fn short(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_ECHO) {
        None => s.into(),
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()).into(),
    }
}

/// A number for a message: plain when short, in exponent form when it would be long.
pub fn fmt_num(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 16 {
        plain
    } else {
        format!("{x:e}")
    }
}

pub(super) fn unknown_key<'a>(
    origin: &str,
    k: &Node,
    path: &str,
    known: impl Iterator<Item = &'a str>,
) -> ConfigError {
    let name = k.scalar().unwrap_or("");
    let hint = nearest(name, known)
        .map(|n| format!("; did you mean '{n}'?"))
        .unwrap_or_default();
    err(
        origin,
        Some(k),
        Some(&short(path)),
        format!("unknown key{hint}"),
    )
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    // Edit distance is quadratic: a name far longer than any known one is no typo of it.
    if name.len() > 200 {
        return None;
    }
    known
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub(super) fn scalar_str<'a>(origin: &str, v: &'a Node, key: &str) -> Result<&'a str, ConfigError> {
    match &v.kind {
        Kind::Scalar { text, .. } if !v.is_null() => Ok(text),
        _ => Err(expected(origin, v, key, "a string")),
    }
}

pub(super) fn as_bool(origin: &str, v: &Node, key: &str) -> Result<bool, ConfigError> {
    match &v.kind {
        Kind::Scalar {
            text,
            quoted: false,
        } => match text.as_str() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err(expected(origin, v, key, "true or false")),
        },
        _ => Err(expected(origin, v, key, "true or false")),
    }
}

fn number(v: &Node) -> Option<f64> {
    match &v.kind {
        Kind::Scalar {
            text,
            quoted: false,
        } => {
            let t = text.replace('_', "");
            match t.as_str() {
                ".inf" | ".Inf" | "+.inf" => Some(f64::INFINITY),
                "-.inf" | "-.Inf" => Some(f64::NEG_INFINITY),
                _ => t.parse::<f64>().ok().filter(|x| x.is_finite()),
            }
        }
        _ => None,
    }
}

pub(super) fn as_f64_in(
    origin: &str,
    v: &Node,
    key: &str,
    lo: f64,
    hi: f64,
    lo_inclusive: bool,
) -> Result<f64, ConfigError> {
    let x = number(v).ok_or_else(|| expected(origin, v, key, "a number"))?;
    let above = if lo_inclusive { x >= lo } else { x > lo };
    if !above || x > hi {
        let lo_s = if lo_inclusive {
            format!(">= {}", fmt_num(lo))
        } else {
            format!("> {}", fmt_num(lo))
        };
        let range = if hi.is_finite() {
            format!("{lo_s} and <= {}", fmt_num(hi))
        } else {
            lo_s
        };
        return Err(err(
            origin,
            Some(v),
            Some(key),
            format!("{} is out of range; expected a number {range}", fmt_num(x)),
        ));
    }
    Ok(x)
}

pub(super) fn as_u64(origin: &str, v: &Node, key: &str) -> Result<u64, ConfigError> {
    match &v.kind {
        Kind::Scalar {
            text,
            quoted: false,
        } => text
            .replace('_', "")
            .parse::<u64>()
            .map_err(|_| expected(origin, v, key, "a whole number >= 0")),
        _ => Err(expected(origin, v, key, "a whole number >= 0")),
    }
}

/// A node as JSON: unquoted scalars that read as numbers, booleans or null are those; mappings
/// keep their order.
pub(super) fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &n.kind {
        Kind::Scalar { text, quoted: true } => Value::String(text.clone()),
        Kind::Scalar { text, .. } => {
            let t = text.trim();
            if let Ok(i) = t.parse::<i64>() {
                Value::from(i)
            } else if let Some(x) = t.parse::<f64>().ok().filter(|x| x.is_finite()) {
                Value::from(x)
            } else {
                match t {
                    "true" | "True" => Value::Bool(true),
                    "false" | "False" => Value::Bool(false),
                    "null" | "~" | "" => Value::Null,
                    _ => Value::String(text.clone()),
                }
            }
        }
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.scalar().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
    }
}
