//! Writing a config back out: as JSON (checkpoint metadata, result.json) and as YAML
//! (`params.yaml`), with RLlib's current key names.

use algorithms::AlgorithmConfig;
use algorithms::config::{ConfigValue, KeyKind, keys};
use serde_json::{Map, Value};

/// A config value as JSON.
pub fn to_json(v: &ConfigValue) -> Value {
    match v {
        ConfigValue::Null => Value::Null,
        ConfigValue::Bool(b) => Value::Bool(*b),
        ConfigValue::Int(n) => Value::from(*n),
        ConfigValue::Float(x) => {
            serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number)
        }
        ConfigValue::Str(s) => Value::String(s.clone()),
        ConfigValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        ConfigValue::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// The config with RLlib's key names: every key of the run's algorithm (from the key table),
/// sections as mappings, `seed` the run's seed.
pub fn config_json(c: &AlgorithmConfig, seed: u64) -> Value {
    let mut out = Map::new();
    for k in keys() {
        if !k.applies_to(c.algo) || matches!(k.kind(), KeyKind::Ignored) {
            continue;
        }
        out.insert(k.name().to_string(), to_json(&k.export(c)));
    }
    out.insert("seed".into(), Value::from(seed));
    Value::Object(out)
}

/// Renders a JSON value as block-style YAML (the subset `params.yaml` needs).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    write_yaml(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && s.parse::<f64>().is_err()
                && !matches!(s.as_str(), "true" | "false" | "null" | "True" | "False");
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        other => other.to_string(),
    }
}

fn write_yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_array() || x.is_object()) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in a {
                            out.push_str(&format!("{pad}- {}\n", flow(item)));
                        }
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", flow(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

fn flow(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => scalar(other),
    }
}
