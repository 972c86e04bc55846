//! The config keys as a Markdown table, from the key table (`rllib keys`; the README's key
//! list is this output, checked by a test).

use algorithms::AlgorithmConfig;
use algorithms::config::{Algo, Key, KeyKind, keys};

use super::export::to_json;

/// The default of `k` for `algos`: one value when all have the same, else per algorithm.
fn default(k: &Key, algos: &[Algo]) -> String {
    let shown: Vec<(Algo, String)> = algos
        .iter()
        .map(|&a| {
            let v = to_json(&k.get(&AlgorithmConfig::new(a)));
            (a, serde_json::to_string(&v).unwrap_or_default())
        })
        .collect();
    if shown.windows(2).all(|w| w[0].1 == w[1].1) {
        shown.first().map(|(_, v)| v.clone()).unwrap_or_default()
    } else {
        shown
            .iter()
            .map(|(a, v)| format!("{}: {v}", a.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One key's row; a section's key belongs to the section's algorithms (`owners`).
fn row(name: &str, k: &Key, owners: &[Algo], out: &mut String) {
    let algos: Vec<Algo> = Algo::ALL
        .into_iter()
        .filter(|a| k.applies_to(*a) && (owners.is_empty() || owners.contains(a)))
        .collect();
    let aliases = k
        .aliases()
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let owners = if algos.len() == Algo::ALL.len() {
        "all".to_string()
    } else {
        algos
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let restore = if k.restorable() { "yes" } else { "no" };
    out.push_str(&format!(
        "| `{name}` | {aliases} | {owners} | {} | `{}` | {restore} | {} |\n",
        k.kind().describe().replace('|', "\\|"),
        default(k, &algos).replace('|', "\\|"),
        k.doc().replace('|', "\\|"),
    ));
}

/// Every key: name (sections' keys as `section.key`), aliases, algorithms, accepted values,
/// default, whether a restored run may change it, and what it does.
pub fn markdown() -> String {
    let mut out = String::from(
        "| key | also accepted | algorithms | values | default | may change on restore | what it does |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for k in keys() {
        match k.kind() {
            KeyKind::Section => {
                for c in k.children() {
                    row(
                        &format!("{}.{}", k.name(), c.name()),
                        &c,
                        k.algos(),
                        &mut out,
                    );
                }
            }
            _ => row(k.name(), &k, &[], &mut out),
        }
    }
    out
}
