//! A YAML tree that remembers where each node came from, so that config errors can name the
//! line and column (built from yaml-rust2's marked parser events).
//!
//! The input is bounded: at most [`MAX_NODES`] nodes after alias expansion (a "billion laughs"
//! file stops here instead of filling memory), nesting at most [`MAX_DEPTH`] levels, and one
//! document. Duplicate keys are errors naming both places; YAML merge keys (`<<: *base`) are
//! resolved as the YAML 1.1 merge type says (explicit keys win, then earlier merged maps).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The most nodes a document may expand to (aliases counted at every use).
pub const MAX_NODES: usize = 100_000;
/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;

/// A YAML node and its position (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// The kinds of node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar; `quoted` is true for quoted and block strings (never numbers or booleans).
    Scalar {
        /// Its text.
        text: String,
        /// Whether it was quoted.
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

/// A syntax error, or a document this reader refuses (a bound exceeded, a duplicate key, a
/// second document), with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// Whether the YAML itself is malformed (as opposed to well-formed but refused).
    pub malformed: bool,
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Each document's start and its root node.
    documents: Vec<((usize, usize), Option<Node>)>,
    /// Anchored nodes and their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

fn position(mark: &Marker) -> (usize, usize) {
    (mark.line(), mark.col() + 1)
}

fn bound_error(at: (usize, usize), message: String) -> SyntaxError {
    SyntaxError {
        line: at.0,
        col: at.1,
        message,
        malformed: false,
    }
}

/// Nodes in a tree.
fn size(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Scalar { .. } => 0,
        Kind::Seq(items) => items.iter().map(size).sum(),
        Kind::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
    }
}

impl Builder {
    fn count(&mut self, n: usize, at: (usize, usize)) -> Result<(), SyntaxError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(bound_error(
                at,
                format!(
                    "the document expands to more than {MAX_NODES} nodes (aliases count at every use); a config is expected to be far smaller"
                ),
            ));
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor > 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        match self.stack.last_mut() {
            None => {
                if let Some(doc) = self.documents.last_mut() {
                    doc.1 = Some(node);
                }
            }
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame, at: (usize, usize)) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(bound_error(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), SyntaxError> {
        let at = position(&mark);
        let node = |kind| Node {
            kind,
            line: at.0,
            col: at.1,
        };
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                self.count(1, at)?;
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.finish(node(Kind::Scalar { text, quoted }), anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.count(1, at)?;
                let frame = Frame::Seq(node(Kind::Seq(Vec::new())), Vec::new(), anchor);
                self.push(frame, at)?;
            }
            Event::MappingStart(anchor, _) => {
                self.count(1, at)?;
                let frame = Frame::Map(node(Kind::Map(Vec::new())), Vec::new(), None, anchor);
                self.push(frame, at)?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(mut n, items, anchor)) = self.stack.pop() {
                    n.kind = Kind::Seq(items);
                    self.finish(n, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut n, entries, _, anchor)) = self.stack.pop() {
                    n.kind = Kind::Map(resolve_mapping(entries)?);
                    self.finish(n, anchor)?;
                }
            }
            Event::Alias(id) => {
                let (n, sz) = self.anchors.get(&id).cloned().ok_or_else(|| {
                    bound_error(at, "an alias to an anchor that is not defined".into())
                })?;
                self.count(sz, at)?;
                // The alias stands where it is used, for error positions.
                let mut n = n;
                n.line = at.0;
                n.col = at.1;
                self.finish(n, 0)?;
            }
            Event::DocumentStart => self.documents.push((at, None)),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.kind, Kind::Scalar { text, quoted: false } if text == "<<")
}

/// Checks a mapping for duplicate keys and applies its merge keys.
fn resolve_mapping(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    let mut seen: HashMap<&str, &Node> = HashMap::new();
    for (k, _) in &entries {
        if is_merge_key(k) {
            continue;
        }
        if let Some(text) = k.scalar()
            && let Some(first) = seen.insert(text, k)
        {
            return Err(bound_error(
                (k.line, k.col),
                format!(
                    "duplicate key '{}' (first at line {}, column {}); keep one",
                    super::values::short(text),
                    first.line,
                    first.col
                ),
            ));
        }
    }
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(entries);
    }
    let mut explicit = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !is_merge_key(&k) {
            explicit.push((k, v));
            continue;
        }
        let sources = match v.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => items
                .into_iter()
                .map(|item| match item.kind {
                    Kind::Map(m) => Ok(m),
                    _ => Err(bound_error(
                        (item.line, item.col),
                        "a merge key (<<) takes a mapping or a list of mappings".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(bound_error(
                    (v.line, v.col),
                    "a merge key (<<) takes a mapping or a list of mappings".into(),
                ));
            }
        };
        for source in sources {
            for (mk, mv) in source {
                let taken = |list: &[(Node, Node)]| {
                    list.iter()
                        .any(|(k, _)| k.scalar().is_some() && k.scalar() == mk.scalar())
                };
                if !taken(&merged) {
                    merged.push((mk, mv));
                }
            }
        }
    }
    merged.retain(|(mk, _)| {
        !explicit
            .iter()
            .any(|(k, _)| k.scalar().is_some() && k.scalar() == mk.scalar())
    });
    explicit.extend(merged);
    Ok(explicit)
}

/// Parses one YAML document; `Ok(None)` for an empty one. A second document with content
/// (after `---`) is an error naming where each starts.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Events are pulled one at a time (yaml-rust2's `load` recurses once per nesting level;
    // this loop does not), so the bounds above stop a hostile file early.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
            malformed: true,
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        b.on_event(ev, mark)?;
    }
    let mut docs = b
        .documents
        .into_iter()
        .filter(|(_, root)| root.as_ref().is_some_and(|n| !n.is_null()));
    let first = docs.next();
    if let Some(((line, col), _)) = docs.next() {
        let l = first.as_ref().map_or(1, |f| f.0.0);
        return Err(bound_error(
            (line, col),
            format!(
                "a second YAML document (after `---`); the first starts at line {l}. Put one experiment per file"
            ),
        ));
    }
    let first = first.and_then(|(_, root)| root);
    Ok(first)
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is YAML's null (`~`, `null`, `Null`, `NULL` or empty, unquoted).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short description of the node's type, for error messages (long text is cut).
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null".to_string(),
            Kind::Scalar { text, .. } => format!("'{}'", super::values::short(text)),
            Kind::Seq(items) if items.is_empty() => "an empty list".to_string(),
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a:\n  b: 1\n  c: [x, 'y']\n").unwrap().unwrap();
        let Kind::Map(top) = &n.kind else { panic!() };
        let (k, v) = &top[0];
        assert_eq!((k.line, k.col), (1, 1));
        let Kind::Map(inner) = &v.kind else { panic!() };
        assert_eq!((inner[1].0.line, inner[1].0.col), (3, 3));
        let Kind::Seq(items) = &inner[1].1.kind else {
            panic!()
        };
        assert_eq!(
            items[1].kind,
            Kind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("---\n").unwrap(), None);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        let n = parse("\u{feff}exp: 1\n").unwrap().unwrap();
        let Kind::Map(top) = &n.kind else { panic!() };
        assert_eq!(top[0].0.scalar(), Some("exp"));
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let e = parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!((e.line, e.col), (4, 3));
        assert!(e.message.contains("duplicate key 'c'"), "{e:?}");
        assert!(e.message.contains("line 3, column 3"), "{e:?}");
    }

    #[test]
    fn merge_keys_merge_and_explicit_keys_win() {
        let n = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
            .unwrap()
            .unwrap();
        let Kind::Map(top) = &n.kind else { panic!() };
        let Kind::Map(other) = &top[1].1.kind else {
            panic!()
        };
        let pairs: Vec<_> = other
            .iter()
            .map(|(k, v)| (k.scalar().unwrap(), v.scalar().unwrap()))
            .collect();
        assert_eq!(pairs, [("y", "3"), ("x", "1")]);
        let e = parse("a:\n  <<: 5\n").unwrap_err();
        assert!(e.message.contains("merge key"), "{e:?}");
    }

    #[test]
    fn a_second_document_is_an_error() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("second YAML document") && e.message.contains("line 1"),
            "{e:?}"
        );
        // An empty trailing document is harmless.
        assert!(parse("a: 1\n---\n").unwrap().is_some());
    }

    #[test]
    fn alias_bombs_and_deep_nesting_stop_at_the_bounds() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = (b'a' + i - 1) as char;
            let name = (b'a' + i) as char;
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("more than 100000 nodes"), "{e:?}");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e:?}");
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        let e = parse(&block).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e:?}");
    }
}
