//! A config key, declared once: its RLlib name and old aliases, the algorithms it belongs to,
//! its type and range, a doc line, whether a restored run may change it, and how to read and
//! write it on the settings struct it belongs to. The tables of these (common ones in
//! [`super::common`], off-policy ones in [`super::off_policy`], each algorithm's in its
//! folder) drive parsing, validation, export (`params.yaml`, checkpoints), nearest-key
//! suggestions and the README's key list; [`Key`] is one of them as seen on the whole
//! [`AlgorithmConfig`].

use super::{Algo, AlgorithmConfig, DqnConfig, OffPolicyConfig, PpoConfig, SacConfig};

/// A config value, as parsed and checked against its key's [`KeyKind`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(u64),
    /// A number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<ConfigValue>),
    /// A mapping (a section such as `model`), in order.
    Map(Vec<(String, ConfigValue)>),
}

impl ConfigValue {
    /// The number (a whole number reads as one too).
    pub fn f64(&self) -> f64 {
        match self {
            ConfigValue::Float(x) => *x,
            ConfigValue::Int(n) => *n as f64,
            _ => 0.0,
        }
    }

    /// The whole number.
    pub fn u64(&self) -> u64 {
        match self {
            ConfigValue::Int(n) => *n,
            _ => 0,
        }
    }

    /// The whole number as a size.
    pub fn usize(&self) -> usize {
        self.u64() as usize
    }

    /// The flag.
    pub fn bool(&self) -> bool {
        matches!(self, ConfigValue::Bool(true))
    }

    /// The string (empty if not a string).
    pub fn str(&self) -> &str {
        match self {
            ConfigValue::Str(s) => s,
            _ => "",
        }
    }

    /// Whether this is `null`, or `auto` for keys that take it.
    pub fn is_unset(&self) -> bool {
        matches!(self, ConfigValue::Null) || self.str() == "auto"
    }

    /// A list's items (empty if not a list).
    pub fn items(&self) -> &[ConfigValue] {
        match self {
            ConfigValue::List(v) => v,
            _ => &[],
        }
    }

    /// A schedule `[[t, v], ...]` (None for null).
    pub fn schedule(&self) -> Option<Vec<(u64, f64)>> {
        match self {
            ConfigValue::List(v) => Some(
                v.iter()
                    .map(|p| (p.items()[0].u64(), p.items()[1].f64()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The value for a schedule.
    pub fn from_schedule(s: &Option<Vec<(u64, f64)>>) -> Self {
        match s {
            None => ConfigValue::Null,
            Some(points) => ConfigValue::List(
                points
                    .iter()
                    .map(|&(t, v)| {
                        ConfigValue::List(vec![ConfigValue::Int(t), ConfigValue::Float(v)])
                    })
                    .collect(),
            ),
        }
    }

    /// A whole number, or `auto` for `None`.
    pub fn from_count_or_auto(n: Option<usize>) -> Self {
        n.map_or(ConfigValue::Str("auto".into()), |n| {
            ConfigValue::Int(n as u64)
        })
    }

    /// A number, or `null` for `None`.
    pub fn from_option(x: Option<f64>) -> Self {
        x.map_or(ConfigValue::Null, ConfigValue::Float)
    }
}

/// The type and range of a key's value.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// A whole number in `min..=max`.
    Count {
        /// Smallest.
        min: u64,
        /// Largest.
        max: u64,
    },
    /// A whole number ≥ `min`, or `auto`.
    CountOrAuto {
        /// Smallest.
        min: u64,
    },
    /// A whole number ≥ `min`, or `null` (off).
    CountOrNull {
        /// Smallest.
        min: u64,
    },
    /// A number in the range (`min` included when `min_inclusive`, `max` always).
    Float {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Whether `min` itself is allowed.
        min_inclusive: bool,
    },
    /// Like `Float`, or `null` (off).
    FloatOrNull {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Whether `min` itself is allowed.
        min_inclusive: bool,
    },
    /// A number in `min..=max`, or `auto`.
    FloatOrAuto {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// One of these names.
    Choice(&'static [&'static str]),
    /// A registered env id (checked against the registry by the parser).
    Env,
    /// A whole number or `null` (drawn at random).
    Seed,
    /// `[[timestep, value], ...]` with timesteps that do not decrease and values ≥ 0, or
    /// `null`.
    Schedule,
    /// A list of layer sizes, each ≥ 1 (may be empty).
    Sizes,
    /// A whole number ≥ `min`, or a range `[lo, hi]` drawn from per sample (RLlib's n-step).
    CountOrRange {
        /// Smallest.
        min: u64,
    },
    /// A file or folder path (or pattern), or `null` (none).
    PathOrNull,
    /// A mapping of its own keys (the spec's `section`).
    Section,
    /// Accepted for compatibility with RLlib's files and ignored (with one warning).
    Ignored,
}

impl KeyKind {
    /// The expected form, for messages and the README.
    pub fn describe(&self) -> String {
        let num = |x: f64| {
            if x.is_infinite() {
                "inf".to_string()
            } else {
                format!("{x}")
            }
        };
        match *self {
            KeyKind::Count { min, max } if max == u64::MAX => format!("int >= {min}"),
            KeyKind::Count { min, max } => format!("int {min}..{max}"),
            KeyKind::CountOrAuto { min } => format!("int >= {min} or \"auto\""),
            KeyKind::CountOrNull { min } => format!("int >= {min} or null"),
            KeyKind::Float {
                min,
                max,
                min_inclusive,
            }
            | KeyKind::FloatOrNull {
                min,
                max,
                min_inclusive,
            } => {
                let lo = if min_inclusive { ">=" } else { ">" };
                let range = if max.is_infinite() {
                    format!("float {lo} {}", num(min))
                } else {
                    format!("float {lo} {} and <= {}", num(min), num(max))
                };
                if matches!(self, KeyKind::FloatOrNull { .. }) {
                    format!("{range}, or null")
                } else {
                    range
                }
            }
            KeyKind::FloatOrAuto { min, max } => {
                format!("float {}..{}, or \"auto\"", num(min), num(max))
            }
            KeyKind::Bool => "bool".into(),
            KeyKind::Choice(c) => c.join(" | "),
            KeyKind::Env => "env id".into(),
            KeyKind::Seed => "int or null".into(),
            KeyKind::Schedule => "[[timestep, value], ...] or null".into(),
            KeyKind::Sizes => "list of ints >= 1".into(),
            KeyKind::CountOrRange { min } => format!("int >= {min}, or [lo, hi]"),
            KeyKind::PathOrNull => "path or null".into(),
            KeyKind::Section => "mapping".into(),
            KeyKind::Ignored => "ignored".into(),
        }
    }
}

/// One config key of a settings struct `C`.
pub struct KeySpec<C: 'static> {
    /// RLlib's current name.
    pub name: &'static str,
    /// Old names that mean the same.
    pub aliases: &'static [&'static str],
    /// The algorithms it belongs to (empty: every one).
    pub algos: &'static [Algo],
    /// Type and range.
    pub kind: KeyKind,
    /// One line on what it does.
    pub doc: &'static str,
    /// Whether `--restore` may change it (keys that shape learned state may not).
    pub restorable: bool,
    /// Reads it.
    pub get: fn(&C) -> ConfigValue,
    /// Writes a value that has passed the kind's checks.
    pub set: fn(&mut C, &ConfigValue),
    /// The keys of a [`KeyKind::Section`] (empty otherwise).
    pub section: &'static [KeySpec<C>],
}

impl<C> std::fmt::Debug for KeySpec<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpec").field("name", &self.name).finish()
    }
}

/// A key as seen on the whole [`AlgorithmConfig`]: the spec and the section it lives in.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// A common key.
    Common(&'static KeySpec<AlgorithmConfig>),
    /// A key of the off-policy (replay, target network) settings.
    OffPolicy(&'static KeySpec<OffPolicyConfig>),
    /// A PPO key.
    Ppo(&'static KeySpec<PpoConfig>),
    /// A DQN key.
    Dqn(&'static KeySpec<DqnConfig>),
    /// A SAC key.
    Sac(&'static KeySpec<SacConfig>),
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.name() == other.name()
    }
}

/// Calls `$body` with `$s` bound to the key's spec, whatever its section.
macro_rules! each {
    ($k:expr, |$s:ident| $body:expr) => {
        match $k {
            Key::Common($s) => $body,
            Key::OffPolicy($s) => $body,
            Key::Ppo($s) => $body,
            Key::Dqn($s) => $body,
            Key::Sac($s) => $body,
        }
    };
}

impl Key {
    /// RLlib's current name.
    pub fn name(&self) -> &'static str {
        each!(self, |s| s.name)
    }

    /// Old names.
    pub fn aliases(&self) -> &'static [&'static str] {
        each!(self, |s| s.aliases)
    }

    /// The algorithms it belongs to (empty: every one).
    pub fn algos(&self) -> &'static [Algo] {
        each!(self, |s| s.algos)
    }

    /// Type and range.
    pub fn kind(&self) -> KeyKind {
        each!(self, |s| s.kind)
    }

    /// One line on what it does.
    pub fn doc(&self) -> &'static str {
        each!(self, |s| s.doc)
    }

    /// Whether `--restore` may change it.
    pub fn restorable(&self) -> bool {
        each!(self, |s| s.restorable)
    }

    /// Whether `name` is this key's name or one of its aliases.
    pub fn is(&self, name: &str) -> bool {
        self.name() == name || self.aliases().contains(&name)
    }

    /// Whether the key belongs to `algo`.
    pub fn applies_to(&self, algo: Algo) -> bool {
        self.algos().is_empty() || self.algos().contains(&algo)
    }

    /// "PPO", "DQN and SAC": the algorithms it belongs to.
    pub fn owners(&self) -> String {
        let names: Vec<&str> = self.algos().iter().map(|a| a.name()).collect();
        match names.as_slice() {
            [] => "every algorithm".into(),
            [one] => (*one).to_string(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// Its value in `c`.
    pub fn get(&self, c: &AlgorithmConfig) -> ConfigValue {
        match *self {
            Key::Common(s) => (s.get)(c),
            Key::OffPolicy(s) => (s.get)(&c.off_policy),
            Key::Ppo(s) => (s.get)(&c.ppo),
            Key::Dqn(s) => (s.get)(&c.dqn),
            Key::Sac(s) => (s.get)(&c.sac),
        }
    }

    /// Sets a value that has passed the kind's checks.
    pub fn set(&self, c: &mut AlgorithmConfig, v: &ConfigValue) {
        match *self {
            Key::Common(s) => (s.set)(c, v),
            Key::OffPolicy(s) => (s.set)(&mut c.off_policy, v),
            Key::Ppo(s) => (s.set)(&mut c.ppo, v),
            Key::Dqn(s) => (s.set)(&mut c.dqn, v),
            Key::Sac(s) => (s.set)(&mut c.sac, v),
        }
    }

    /// The keys of a section (empty for other kinds).
    pub fn children(&self) -> Vec<Key> {
        match *self {
            Key::Common(s) => s.section.iter().map(Key::Common).collect(),
            Key::OffPolicy(s) => s.section.iter().map(Key::OffPolicy).collect(),
            Key::Ppo(s) => s.section.iter().map(Key::Ppo).collect(),
            Key::Dqn(s) => s.section.iter().map(Key::Dqn).collect(),
            Key::Sac(s) => s.section.iter().map(Key::Sac).collect(),
        }
    }

    /// The value of a section, or of any key: sections as a mapping of their keys (those
    /// of the config's algorithm).
    pub fn export(&self, c: &AlgorithmConfig) -> ConfigValue {
        match self.kind() {
            KeyKind::Section => ConfigValue::Map(
                self.children()
                    .iter()
                    .filter(|k| k.applies_to(c.algo))
                    .map(|k| (k.name().to_string(), k.export(c)))
                    .collect(),
            ),
            _ => self.get(c),
        }
    }
}

/// Declares a key: `key!("name", ["alias"], [Algo::Ppo], kind, restorable, "doc", |c| get, |c, v| set)`,
/// or a section: `key!(section "name", [..], [..], restorable, "doc", KEYS)`.
#[macro_export]
macro_rules! key {
    ($name:literal, [$($alias:literal),*], [$($algo:expr),*], $kind:expr, $restorable:expr, $doc:literal,
     |$c:ident| $get:expr, |$m:ident, $v:ident| $set:expr) => {
        $crate::config::key::KeySpec {
            name: $name,
            aliases: &[$($alias),*],
            algos: &[$($algo),*],
            kind: $kind,
            doc: $doc,
            restorable: $restorable,
            get: |$c| $get,
            set: |$m, $v| $set,
            section: &[],
        }
    };
    (section $name:literal, [$($alias:literal),*], [$($algo:expr),*], $restorable:expr, $doc:literal, $keys:expr) => {
        $crate::config::key::KeySpec {
            name: $name,
            aliases: &[$($alias),*],
            algos: &[$($algo),*],
            kind: $crate::config::key::KeyKind::Section,
            doc: $doc,
            restorable: $restorable,
            get: |_| $crate::config::key::ConfigValue::Null,
            set: |_, _| {},
            section: $keys,
        }
    };
}
