//! Reading a YAML value as a config key's value: the key's [`KeyKind`] (from the key table
//! in `algorithms`) says the type and range; errors name the origin, position, key and the
//! expected form.

use algorithms::config::{ConfigValue, KeyKind};

use super::ConfigError;
use super::values::{as_bool, as_f64_in, as_u64, err, expected, nearest, scalar_str, short};
use super::yaml::{Kind, Node};

/// "a, b or c".
pub(super) fn one_of(choices: &[&str]) -> String {
    match choices {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn count(origin: &str, v: &Node, path: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n = as_u64(origin, v, path).map_err(|mut e| {
        e.message = e.message.replace(">= 0", &format!(">= {min}"));
        e
    })?;
    if n < min || n > max {
        let range = if max == u64::MAX {
            format!(">= {min}")
        } else {
            format!("from {min} to {max}")
        };
        return Err(err(
            origin,
            Some(v),
            Some(path),
            format!("{n} is out of range; expected a whole number {range}"),
        ));
    }
    Ok(n)
}

fn schedule(origin: &str, v: &Node, path: &str) -> Result<ConfigValue, ConfigError> {
    if v.is_null() {
        return Ok(ConfigValue::Null);
    }
    let form = "a list of [timestep, value] pairs, e.g. [[0, 0.001], [100000, 0.0001]]";
    let Kind::Seq(items) = &v.kind else {
        return Err(expected(origin, v, path, form));
    };
    if items.is_empty() {
        return Err(err(
            origin,
            Some(v),
            Some(path),
            format!("is empty; expected {form}, or null for no schedule"),
        ));
    }
    let mut out: Vec<ConfigValue> = Vec::new();
    let mut prev: Option<u64> = None;
    for item in items {
        match &item.kind {
            Kind::Seq(pair) if pair.len() == 2 => {
                let t = as_u64(origin, &pair[0], path)?;
                if let Some(p) = prev
                    && t < p
                {
                    return Err(err(
                        origin,
                        Some(&pair[0]),
                        Some(path),
                        format!(
                            "timestep {t} comes after {p}; expected timesteps that do not decrease"
                        ),
                    ));
                }
                prev = Some(t);
                let x = as_f64_in(origin, &pair[1], path, 0.0, f64::INFINITY, true)?;
                out.push(ConfigValue::List(vec![
                    ConfigValue::Int(t),
                    ConfigValue::Float(x),
                ]));
            }
            _ => return Err(expected(origin, item, path, form)),
        }
    }
    Ok(ConfigValue::List(out))
}

/// `v` read as a value of `kind` (not a section: the caller walks those).
pub(super) fn value(
    origin: &str,
    v: &Node,
    path: &str,
    kind: KeyKind,
) -> Result<ConfigValue, ConfigError> {
    let auto = v.scalar() == Some("auto");
    Ok(match kind {
        KeyKind::Count { min, max } => ConfigValue::Int(count(origin, v, path, min, max)?),
        KeyKind::CountOrAuto { min } if auto => {
            let _ = min;
            ConfigValue::Str("auto".into())
        }
        KeyKind::CountOrAuto { min } => {
            ConfigValue::Int(count(origin, v, path, min, u64::MAX).map_err(|mut e| {
                e.message = format!("{} or \"auto\"", e.message);
                e
            })?)
        }
        KeyKind::CountOrNull { .. } if v.is_null() => ConfigValue::Null,
        KeyKind::CountOrNull { min } => ConfigValue::Int(count(origin, v, path, min, u64::MAX)?),
        KeyKind::Float {
            min,
            max,
            min_inclusive,
        } => ConfigValue::Float(as_f64_in(origin, v, path, min, max, min_inclusive)?),
        KeyKind::FloatOrNull { .. } if v.is_null() => ConfigValue::Null,
        KeyKind::FloatOrNull {
            min,
            max,
            min_inclusive,
        } => ConfigValue::Float(as_f64_in(origin, v, path, min, max, min_inclusive)?),
        KeyKind::FloatOrAuto { .. } if auto => ConfigValue::Str("auto".into()),
        KeyKind::FloatOrAuto { min, max } => {
            ConfigValue::Float(as_f64_in(origin, v, path, min, max, true).map_err(|mut e| {
                e.message = format!("{} or \"auto\"", e.message);
                e
            })?)
        }
        KeyKind::Bool => ConfigValue::Bool(as_bool(origin, v, path)?),
        KeyKind::Choice(choices) => {
            let s = scalar_str(origin, v, path)?;
            if !choices.contains(&s) {
                let hint = nearest(s, choices.iter().copied())
                    .map(|n| format!(" (did you mean '{n}'?)"))
                    .unwrap_or_default();
                let last = path.rsplit('.').next().unwrap_or(path);
                let what = last
                    .trim_start_matches("head_")
                    .trim_start_matches("fcnet_")
                    .replace('_', " ");
                return Err(err(
                    origin,
                    Some(v),
                    Some(path),
                    format!(
                        "unknown {what} '{}'{hint}; expected {}",
                        short(s),
                        one_of(choices)
                    ),
                ));
            }
            ConfigValue::Str(s.to_string())
        }
        KeyKind::Env => ConfigValue::Str(scalar_str(origin, v, path)?.to_string()),
        KeyKind::PathOrNull if v.is_null() => ConfigValue::Null,
        KeyKind::PathOrNull => {
            let p = scalar_str(origin, v, path)?;
            if p.trim().is_empty() {
                return Err(expected(origin, v, path, "a path, or null"));
            }
            ConfigValue::Str(p.to_string())
        }
        KeyKind::Seed if v.is_null() => ConfigValue::Null,
        KeyKind::Seed => ConfigValue::Int(as_u64(origin, v, path)?),
        KeyKind::Schedule => schedule(origin, v, path)?,
        KeyKind::Sizes => {
            let Kind::Seq(items) = &v.kind else {
                return Err(expected(
                    origin,
                    v,
                    path,
                    "a list of layer sizes, e.g. [64, 64]",
                ));
            };
            ConfigValue::List(
                items
                    .iter()
                    .map(|n| count(origin, n, path, 1, u64::MAX).map(ConfigValue::Int))
                    .collect::<Result<_, _>>()?,
            )
        }
        KeyKind::CountOrRange { min } => match &v.kind {
            Kind::Seq(pair) => {
                let [lo, hi] = pair.as_slice() else {
                    return Err(expected(
                        origin,
                        v,
                        path,
                        "a whole number or a range [lo, hi]",
                    ));
                };
                let (l, h) = (
                    count(origin, lo, path, min, u64::MAX)?,
                    count(origin, hi, path, min, u64::MAX)?,
                );
                if l >= h {
                    return Err(err(
                        origin,
                        Some(v),
                        Some(path),
                        format!("[{l}, {h}] is empty; expected lo < hi (drawn from lo to hi - 1)"),
                    ));
                }
                ConfigValue::List(vec![ConfigValue::Int(l), ConfigValue::Int(h)])
            }
            _ => ConfigValue::Int(count(origin, v, path, min, u64::MAX)?),
        },
        KeyKind::Section => {
            return Err(expected(origin, v, path, "a mapping"));
        }
        KeyKind::Ignored => ConfigValue::Null,
    })
}
