//! A small spanned YAML tree over `saphyr-parser`'s event API.
//!
//! Why our own tree instead of a serde deserializer: manifests must report
//! `file:line:col` for every problem, keep every scalar as the text the user
//! wrote (a tag `1.10` must never become the float `1.1`), refuse duplicate
//! keys, and expand aliases under a budget we control so that an alias bomb
//! fails in microseconds instead of exhausting memory. The event API gives a
//! position for every event, and the tree below borrows scalar text from the
//! input, so parsing allocates little more than the containers.
//!
//! The tree carries no schema: `decode` gives the nodes their meaning.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

/// At most this many nodes may be produced by expanding aliases in one file.
/// Real manifests use no aliases at all; the bound only exists so that a
/// "billion laughs" file fails fast with a clear message.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Deepest nesting accepted. A manifest is four levels deep; the bound keeps
/// hostile input (`[[[[...`) from costing stack or memory.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line; 0 only for an error with no position (the whole file).
    pub line: u32,
    /// 1-based column, in characters rather than bytes.
    pub col: u32,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: saturate(span.start.line()),
            col: saturate(span.start.col().saturating_add(1)),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A scalar exactly as written (quotes removed, escapes resolved), with the
/// style it was written in, so that callers can tell `true` from `"true"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar<'a> {
    /// The text, never converted to a number or boolean; borrowed from the
    /// input unless escapes had to be resolved.
    pub text: Cow<'a, str>,
    /// Plain, quoted or block, as written.
    pub style: ScalarStyle,
}

impl Scalar<'_> {
    /// An empty plain scalar, `~` or `null`: YAML's ways of writing "nothing".
    pub fn is_null(&self) -> bool {
        self.style == ScalarStyle::Plain
            && matches!(&*self.text, "" | "~" | "null" | "Null" | "NULL")
    }
}

/// What a node holds. Aliases are already expanded, so there is no alias
/// variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// A scalar, including the empty value and `null`.
    Scalar(Scalar<'a>),
    /// A list, items in file order.
    Seq(Vec<Node<'a>>),
    /// A mapping as (key, value) pairs in file order; a repeated key was
    /// reported and only its first entry kept.
    Map(Vec<(Node<'a>, Node<'a>)>),
}

/// One node of the tree, with where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<'a> {
    /// The node's content.
    pub value: Value<'a>,
    /// Where the node starts; for an expanded alias, where the alias is.
    pub pos: Pos,
}

impl<'a> Node<'a> {
    /// The scalar, or `None` for a list or mapping.
    pub fn as_scalar(&self) -> Option<&Scalar<'a>> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
    /// True for a null scalar (see [`Scalar::is_null`]); a list or mapping
    /// is never null.
    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }
    /// "a list", "a mapping", "the text \"x\"": for "expected ..., found ..." messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar(s) if s.is_null() => "an empty value".to_string(),
            Value::Scalar(s) => format!("the text {}", quote(&s.text)),
        }
    }
}

/// Quote user text for a message: credentials redacted (before cutting, so
/// that a cut cannot hide the '@' that marks them), bounded length, control
/// characters escaped.
pub fn quote(text: &str) -> String {
    // Long enough for a sha512 digest, short enough for a line.
    const MAX: usize = 140;
    let mut text = text.to_string();
    crate::diag::redact::credentials(&mut text);
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// A problem found while parsing: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where the problem is; line 0 when the parser failed without one.
    pub pos: Pos,
    /// What is wrong, in the user's terms.
    pub message: String,
    /// How to fix it; `None` when no fix is known.
    pub help: Option<String>,
}

impl YamlError {
    fn new(pos: Pos, message: impl Into<String>, help: Option<String>) -> YamlError {
        YamlError {
            pos,
            message: message.into(),
            help,
        }
    }
}

/// The result of parsing one file. `root` is `None` for a file without a
/// document (empty or comments only) and after a fatal error. Non-fatal
/// errors (duplicate keys) leave the tree usable: the repeated entry is
/// dropped so that decoding can go on and report the rest.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// The document's top node; `None` when there is no document or parsing
    /// stopped at a fatal error.
    pub root: Option<Node<'a>>,
    /// Every error found, fatal or not, in the order found.
    pub errors: Vec<YamlError>,
}

/// `node` as JSON, for settings read through serde (registry options):
/// plain scalars that read as booleans, null or numbers become those;
/// quoted scalars stay text.
pub fn to_json(node: &Node<'_>) -> serde_json::Value {
    use serde_json::Value as Json;
    match &node.value {
        Value::Scalar(s) if s.style != ScalarStyle::Plain => Json::String(s.text.to_string()),
        Value::Scalar(s) if s.is_null() => Json::Null,
        Value::Scalar(s) => match s.text.as_ref() {
            "true" | "True" | "TRUE" => Json::Bool(true),
            "false" | "False" | "FALSE" => Json::Bool(false),
            text => text
                .parse::<i64>()
                .map(Json::from)
                .ok()
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .and_then(serde_json::Number::from_f64)
                        .map(Json::Number)
                })
                .unwrap_or_else(|| Json::String(text.to_string())),
        },
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = k
                        .as_scalar()
                        .map(|s| s.text.to_string())
                        .unwrap_or_default();
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

/// Parse one YAML document from `text`. A leading UTF-8 byte order mark is
/// skipped (editors on Windows add one) without shifting any position.
pub fn parse(text: &str) -> Parsed<'_> {
    let mut builder = Builder::default();
    let fatal = drive(text, &mut builder);
    let mut errors = builder.errors;
    match fatal {
        Some(err) => {
            errors.push(err);
            Parsed { root: None, errors }
        }
        None => Parsed {
            root: builder.root,
            errors,
        },
    }
}

/// The result of parsing a stream of documents (see [`parse_stream`]).
#[derive(Debug, Default)]
pub struct ParsedStream<'a> {
    /// The top node of every non-empty document, in file order. After a
    /// fatal error, the documents completed before it.
    pub documents: Vec<Node<'a>>,
    /// Every error found, fatal or not, in the order found.
    pub errors: Vec<YamlError>,
}

/// Parse a stream of YAML documents separated by `---`, as `kubectl` reads
/// a file, with the same positions, budgets and checks as [`parse`]. Empty
/// documents (a bare `---`, or `~`) are skipped. The alias budget covers the
/// whole stream: it bounds the work one file can cause.
pub fn parse_stream(text: &str) -> ParsedStream<'_> {
    let mut builder = Builder {
        stream: true,
        ..Builder::default()
    };
    let fatal = drive(text, &mut builder);
    let mut errors = builder.errors;
    errors.extend(fatal);
    ParsedStream {
        documents: builder.finished,
        errors,
    }
}

/// Feed every event of `text` to `builder`; the fatal error, if any.
fn drive<'a>(text: &'a str, builder: &mut Builder<'a>) -> Option<YamlError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    // The parser's state machine is not ours; a panic in it must become an
    // error about this file, never a crashed presubmit.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        while let Some(next) = parser.next_event() {
            match next {
                Ok((event, span)) => {
                    builder.on_event(event, span)?;
                    if builder.done {
                        return Ok(());
                    }
                }
                Err(err) => return Err(syntax_error(&err)),
            }
        }
        Ok(())
    }));
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err),
        Err(_) => Some(YamlError::new(
            Pos::default(),
            "the YAML parser failed on this file",
            Some("this is a bug in promoter; please report it with the file".to_string()),
        )),
    }
}

fn syntax_error(err: &ScanError) -> YamlError {
    let mark = err.marker();
    let pos = Pos {
        line: saturate(mark.line()).max(1),
        col: saturate(mark.col().saturating_add(1)),
    };
    let info = err.info();
    let help = if info.contains("tab") {
        Some("indent with spaces: YAML does not allow tabs in indentation".to_string())
    } else if info.contains("indentation") || info.contains("did not find expected") {
        Some(
            "check the indentation above this point, and that every quote, [ and { is closed"
                .to_string(),
        )
    } else if info.contains("unknown anchor") {
        Some("define the anchor (&name) before using the alias (*name)".to_string())
    } else {
        None
    };
    YamlError::new(pos, format!("invalid YAML: {info}"), help)
}

/// A container being filled.
enum Open<'a> {
    Seq {
        items: Vec<Node<'a>>,
        pos: Pos,
        anchor: usize,
        size: usize,
    },
    Map {
        entries: Vec<(Node<'a>, Node<'a>)>,
        pending_key: Option<Node<'a>>,
        pos: Pos,
        anchor: usize,
        size: usize,
    },
}

#[derive(Default)]
struct Builder<'a> {
    stack: Vec<Open<'a>>,
    /// Anchor id -> (node, node count), for alias expansion.
    anchors: HashMap<usize, (Node<'a>, usize)>,
    alias_nodes: usize,
    documents: usize,
    root: Option<Node<'a>>,
    errors: Vec<YamlError>,
    done: bool,
    /// Many documents are accepted ([`parse_stream`]); each finished one
    /// moves from `root` to `finished`.
    stream: bool,
    finished: Vec<Node<'a>>,
}

impl<'a> Builder<'a> {
    fn on_event(&mut self, event: Event<'a>, span: Span) -> Result<(), YamlError> {
        let pos = Pos::of(&span);
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentEnd => self.end_document(),
            Event::StreamEnd => self.done = true,
            Event::DocumentStart(_) => self.start_document(pos)?,
            Event::Scalar(text, style, anchor, tag) => {
                check_tag(tag.as_deref(), "str", pos)?;
                let node = Node {
                    value: Value::Scalar(Scalar { text, style }),
                    pos,
                };
                self.complete(node, anchor, 1)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag.as_deref(), "seq", pos)?;
                self.open(
                    Open::Seq {
                        items: Vec::new(),
                        pos,
                        anchor,
                        size: 1,
                    },
                    pos,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag.as_deref(), "map", pos)?;
                self.open(
                    Open::Map {
                        entries: Vec::new(),
                        pending_key: None,
                        pos,
                        anchor,
                        size: 1,
                    },
                    pos,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(pos)?,
            Event::Alias(id) => self.alias(id, pos)?,
        }
        Ok(())
    }

    fn start_document(&mut self, pos: Pos) -> Result<(), YamlError> {
        self.documents += 1;
        if self.documents > 1 && !self.stream {
            return Err(YamlError::new(
                pos,
                "a second YAML document starts here",
                Some("a manifest file holds exactly one document: remove the `---` and what follows, or move it to its own file".to_string()),
            ));
        }
        Ok(())
    }

    fn end_document(&mut self) {
        if self.stream {
            self.finished
                .extend(self.root.take().filter(|root| !root.is_null()));
            // Anchors do not cross documents (the parser forgets
            // their names too); only the alias budget does.
            self.anchors.clear();
        }
    }

    /// The end of the list or mapping opened last.
    fn close(&mut self, pos: Pos) -> Result<(), YamlError> {
        let Some(open) = self.stack.pop() else {
            return Err(YamlError::new(pos, "unbalanced YAML events", None));
        };
        let (node, anchor, size) = match open {
            Open::Seq {
                items,
                pos,
                anchor,
                size,
            } => (
                Node {
                    value: Value::Seq(items),
                    pos,
                },
                anchor,
                size,
            ),
            Open::Map {
                entries,
                pos,
                anchor,
                size,
                ..
            } => {
                let entries = self.drop_duplicate_keys(entries);
                (
                    Node {
                        value: Value::Map(entries),
                        pos,
                    },
                    anchor,
                    size,
                )
            }
        };
        self.complete(node, anchor, size)
    }

    /// An alias, expanded where it is written, within the alias budget.
    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), YamlError> {
        let Some((node, size)) = self.anchors.get(&id) else {
            return Err(YamlError::new(pos, "alias to an unknown anchor", None));
        };
        let size = *size;
        if self.alias_nodes.saturating_add(size) > MAX_ALIAS_NODES {
            return Err(YamlError::new(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)"),
                Some(
                    "write the entries out instead of using anchors (&) and aliases (*)"
                        .to_string(),
                ),
            ));
        }
        self.alias_nodes += size;
        let mut node = node.clone();
        node.pos = pos;
        self.complete(node, 0, size)
    }

    fn open(&mut self, open: Open<'a>, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::new(
                pos,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
                Some(
                    "a manifest nests four levels deep; check the indentation and brackets"
                        .to_string(),
                ),
            ));
        }
        self.stack.push(open);
        Ok(())
    }

    /// Attach a finished node to its parent (or make it the root).
    fn complete(&mut self, node: Node<'a>, anchor: usize, size: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq {
                items, size: total, ..
            }) => {
                *total = total.saturating_add(size);
                items.push(node);
            }
            Some(Open::Map {
                entries,
                pending_key,
                size: total,
                ..
            }) => {
                *total = total.saturating_add(size);
                match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => entries.push((key, node)),
                }
            }
        }
        Ok(())
    }

    /// Report every repeated key (naming the first one's line) and keep only
    /// the first entry, as a reader of the file would expect.
    fn drop_duplicate_keys(
        &mut self,
        entries: Vec<(Node<'a>, Node<'a>)>,
    ) -> Vec<(Node<'a>, Node<'a>)> {
        let key_text = |node: &Node<'a>| node.as_scalar().map(|s| s.text.clone());
        // Most mappings have two or three keys: compare those directly and
        // hash only the long ones (dmaps).
        if entries.len() <= 8 {
            let texts: Vec<Option<&str>> = entries
                .iter()
                .map(|(k, _)| k.as_scalar().map(|s| &*s.text))
                .collect();
            let clean = texts
                .iter()
                .enumerate()
                .all(|(i, t)| t.is_none_or(|t| !texts[..i].contains(&Some(t))));
            if clean {
                return entries;
            }
        }
        let mut seen: HashMap<Cow<'a, str>, Pos> = HashMap::with_capacity(entries.len());
        let mut duplicates = false;
        for (key, _) in &entries {
            if let Some(text) = key_text(key) {
                if let Some(first) = seen.get(&text) {
                    duplicates = true;
                    self.errors.push(YamlError::new(
                        key.pos,
                        format!(
                            "duplicate key {}: it is already set on line {}",
                            quote(&text),
                            first.line
                        ),
                        Some("remove one of the two entries (or merge them)".to_string()),
                    ));
                } else {
                    seen.insert(text, key.pos);
                }
            }
        }
        if !duplicates {
            return entries;
        }
        let mut kept = HashMap::with_capacity(entries.len());
        entries
            .into_iter()
            .filter(|(key, _)| match key_text(key) {
                Some(text) => kept.insert(text, ()).is_none(),
                None => true,
            })
            .collect()
    }
}

/// Allow only the core-schema tag matching the node kind (`!!str` on a
/// scalar, ...): any other tag would change what the text means, and
/// manifests hold plain text.
fn check_tag(tag: Option<&Tag>, allowed: &str, pos: Pos) -> Result<(), YamlError> {
    let Some(tag) = tag else { return Ok(()) };
    if tag.is_yaml_core_schema() && tag.suffix == allowed {
        return Ok(());
    }
    let shown = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    Err(YamlError::new(
        pos,
        format!("YAML tag {} is not supported here", quote(&shown)),
        Some("remove the tag: manifests hold plain text, lists and mappings".to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_json_keep_quoted_text_as_text() {
        let parsed = parse("a: true\nb: \"true\"\nc: 12\nd: 1.5\ne: ~\nf: [x, '7']\n127.0.0.1:5000: {plain_http: false}\n");
        let json = to_json(parsed.root.as_ref().unwrap());
        assert_eq!(
            json,
            serde_json::json!({
                "a": true, "b": "true", "c": 12, "d": 1.5, "e": null, "f": ["x", "7"],
                "127.0.0.1:5000": { "plain_http": false }
            })
        );
    }

    fn root(text: &str) -> Node<'_> {
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.root.expect("a document")
    }

    fn map<'n, 'a>(node: &'n Node<'a>) -> &'n [(Node<'a>, Node<'a>)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn seq<'n, 'a>(node: &'n Node<'a>) -> &'n [Node<'a>] {
        match &node.value {
            Value::Seq(items) => items,
            other => panic!("not a seq: {other:?}"),
        }
    }

    #[test]
    fn scalars_keep_their_raw_text() {
        let node = root("a: [1.0, 1.10, 010, 0x1F, true, ~, '1.0', 1e3]\n");
        let texts: Vec<&str> = seq(&map(&node)[0].1)
            .iter()
            .map(|n| &*n.as_scalar().unwrap().text)
            .collect();
        assert_eq!(
            texts,
            ["1.0", "1.10", "010", "0x1F", "true", "~", "1.0", "1e3"]
        );
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let node = root("images:\n- name: foo\n  dmap: {}\n");
        assert_eq!(map(&node)[0].0.pos, Pos { line: 1, col: 1 });
        let image = &seq(&map(&node)[0].1)[0];
        let entries = map(image);
        assert_eq!(entries[0].1.pos, Pos { line: 2, col: 9 });
        assert_eq!(entries[1].0.pos, Pos { line: 3, col: 3 });
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines_and_dropped() {
        let parsed = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(parsed.errors.len(), 1);
        let err = &parsed.errors[0];
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("already set on line 1"), "{err:?}");
        let root = parsed.root.unwrap();
        let entries = map(&root);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].1.as_scalar().unwrap().text, "1");
    }

    #[test]
    fn quoted_and_plain_duplicates_are_the_same_key() {
        let parsed = parse("\"sha256:ab\": []\nsha256:ab: []\n");
        assert_eq!(parsed.errors.len(), 1);
    }

    #[test]
    fn many_keys_without_duplicates_pass() {
        let text: String = (0..1000).map(|i| format!("k{i}: {i}\n")).collect();
        assert_eq!(map(&root(&text)).len(), 1000);
    }

    #[test]
    fn billion_laughs_fails_fast_with_a_clear_error() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{}]\n", pair[1], pair[1], refs));
        }
        let start = std::time::Instant::now();
        let parsed = parse(&text);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(parsed.root.is_none());
        assert_eq!(parsed.errors.len(), 1);
        assert!(parsed.errors[0].message.contains("alias"), "{parsed:?}");
    }

    #[test]
    fn small_aliases_expand() {
        let node = root("t: &t [\"1.0\", latest]\nu: *t\n");
        assert_eq!(map(&node)[1].1.value, map(&node)[0].1.value);
        assert_eq!(map(&node)[1].1.pos.line, 2);
    }

    #[test]
    fn crlf_line_endings_parse_like_lf() {
        let lf = root("a:\n  - x\n  - y\nb: z\n");
        let crlf = root("a:\r\n  - x\r\n  - y\r\nb: z\r\n");
        assert_eq!(lf, crlf);
    }

    #[test]
    fn a_bom_is_skipped_without_shifting_positions() {
        let plain = root("a:\n  b: c\n");
        let bom = root("\u{FEFF}a:\n  b: c\n");
        assert_eq!(plain, bom);
        assert_eq!(map(&bom)[0].0.pos, Pos { line: 1, col: 1 });
    }

    #[test]
    fn tabs_in_indentation_are_an_error_with_location() {
        let parsed = parse("a:\n\t- x\n");
        assert!(parsed.root.is_none());
        let err = &parsed.errors[0];
        assert_eq!(err.pos.line, 2, "{err:?}");
        assert!(
            err.help.as_deref().unwrap_or("").contains("spaces"),
            "{err:?}"
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let parsed = parse("a: [1, 2\nb: c\n");
        assert!(parsed.root.is_none());
        assert!(parsed.errors[0].message.starts_with("invalid YAML"));
        assert!(parsed.errors[0].pos.line >= 1);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_root() {
        for text in ["", "\n\n", "# just a comment\n# another\n"] {
            let parsed = parse(text);
            assert!(parsed.errors.is_empty(), "{text:?}: {parsed:?}");
            assert!(parsed.root.is_none(), "{text:?}");
        }
    }

    #[test]
    fn a_second_document_is_refused() {
        let parsed = parse("a: 1\n---\nb: 2\n");
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].pos.line, 2);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // Flow nesting is stopped by the scanner's own limit, block nesting by ours.
        let flow = "[".repeat(100_000);
        let parsed = parse(&flow);
        assert!(parsed.root.is_none());
        assert_eq!(parsed.errors.len(), 1);
        let block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let parsed = parse(&block);
        assert!(parsed.root.is_none());
        assert!(parsed.errors[0].message.contains("nesting"), "{parsed:?}");
    }

    #[test]
    fn unsupported_tags_are_refused_and_str_is_fine() {
        assert!(parse("a: !!str 1.0\n").errors.is_empty());
        let parsed = parse("a: !!float 1.0\n");
        assert!(parsed.errors[0].message.contains("!!float"), "{parsed:?}");
        let parsed = parse("a: !custom x\n");
        assert!(parsed.errors[0].message.contains("!custom"), "{parsed:?}");
    }

    #[test]
    fn null_spellings() {
        let node = root("a:\nb: ~\nc: null\nd: ''\n");
        let nulls: Vec<bool> = map(&node).iter().map(|(_, v)| v.is_null()).collect();
        assert_eq!(nulls, [true, true, true, false]);
    }

    fn scalar_at<'n>(node: &'n Node<'_>, key: &str) -> &'n Node<'n> {
        let entries = map(node);
        let (_, value) = entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .unwrap_or_else(|| panic!("no key {key:?} in {node:?}"));
        value
    }

    #[test]
    fn a_stream_yields_every_document_with_file_positions() {
        let text = "a: 1\n---\nb:\n  c: 2\n---\n- x\n";
        let parsed = parse_stream(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 3);
        assert_eq!(parsed.documents[0].pos, Pos { line: 1, col: 1 });
        let c = scalar_at(scalar_at(&parsed.documents[1], "b"), "c");
        assert_eq!(c.pos, Pos { line: 4, col: 6 });
        assert_eq!(c.as_scalar().unwrap().text, "2");
        assert_eq!(seq(&parsed.documents[2])[0].pos, Pos { line: 6, col: 3 });
    }

    #[test]
    fn a_stream_of_one_document_matches_parse() {
        let text = "\u{FEFF}images:\n- name: foo\n  dmap: {}\n";
        let one = parse(text).root.unwrap();
        let stream = parse_stream(text);
        assert!(stream.errors.is_empty(), "{:?}", stream.errors);
        assert_eq!(stream.documents, [one]);
    }

    #[test]
    fn empty_documents_in_a_stream_are_skipped() {
        let parsed = parse_stream("---\n---\na: 1\n---\n# only a comment\n---\n~\n---\n");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 1);
        assert_eq!(parsed.documents[0].pos.line, 3);
        for text in ["", "---\n", "# nothing\n", "---\n...\n---\n"] {
            let parsed = parse_stream(text);
            assert!(parsed.errors.is_empty(), "{text:?}: {parsed:?}");
            assert!(parsed.documents.is_empty(), "{text:?}: {parsed:?}");
        }
    }

    #[test]
    fn a_stream_keeps_the_documents_before_a_syntax_error() {
        let parsed = parse_stream("a: 1\n---\nb: [1, 2\n---\nc: 3\n");
        assert_eq!(parsed.documents.len(), 1, "{parsed:?}");
        assert_eq!(parsed.errors.len(), 1, "{parsed:?}");
        assert!(parsed.errors[0].message.starts_with("invalid YAML"));
        assert!(parsed.errors[0].pos.line >= 3, "{parsed:?}");
    }

    #[test]
    fn duplicate_keys_in_a_stream_are_reported_at_their_line() {
        let parsed = parse_stream("a: 1\n---\nb: 1\nb: 2\n");
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].pos, Pos { line: 4, col: 1 });
        assert!(parsed.errors[0].message.contains("line 3"), "{parsed:?}");
    }

    #[test]
    fn anchors_do_not_cross_documents_but_work_within_one() {
        let parsed = parse_stream("a: &x 1\nb: *x\n---\nc: *x\n");
        assert_eq!(parsed.documents.len(), 1, "{parsed:?}");
        assert_eq!(parsed.errors.len(), 1, "{parsed:?}");
        assert_eq!(parsed.errors[0].pos.line, 4, "{parsed:?}");
    }

    #[test]
    fn the_alias_budget_covers_the_whole_stream() {
        // Each document alone stays under the budget; together they do not.
        let items = vec!["x"; MAX_ALIAS_NODES / 3].join(",");
        let doc = format!("a: &a [{items}]\nb: *a\n");
        let text = format!("{doc}---\n{doc}---\n{doc}---\n{doc}");
        let parsed = parse_stream(&text);
        assert!(
            parsed.errors.iter().any(|e| e.message.contains("alias")),
            "{:?}",
            parsed.errors
        );
        assert!(parsed.documents.len() < 4);
    }
}
