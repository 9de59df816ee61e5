//! A small reader of block-style YAML (mappings, sequences, one-line scalars), enough to check
//! the structure of an example configuration no real program here can load (Envoy's) without a
//! YAML crate. Flow collections (`[a, b]`, `{k: v}`) stay one scalar; anchors are not supported.
//! Anything it does not understand (a tab, a line indented where nothing opens a block, a
//! repeated key) is a panic naming the line.

/// A YAML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    Scalar(String),
}

impl Yaml {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of keys, panicking with the path when it is not there.
    pub fn at(&self, path: &[&str]) -> &Yaml {
        let mut node = self;
        for (depth, key) in path.iter().enumerate() {
            node = node
                .get(key)
                .unwrap_or_else(|| panic!("no {} in the YAML", path[..=depth].join(".")));
        }
        node
    }

    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(items) => items,
            other => panic!("not a list: {other:?}"),
        }
    }

    pub fn scalar(&self) -> &str {
        match self {
            Yaml::Scalar(value) => value,
            other => panic!("not a scalar: {other:?}"),
        }
    }
}

struct Line {
    number: usize,
    indent: usize,
    text: String,
}

/// Reads `text`; panics on anything outside the subset.
pub fn parse(text: &str) -> Yaml {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        assert!(!raw.contains('\t'), "line {number}: a tab");
        let content = without_comment(raw).trim_end();
        if content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        lines.push(Line {
            number,
            indent,
            text: content.trim_start().to_owned(),
        });
    }
    if lines.is_empty() {
        return Yaml::Map(Vec::new());
    }
    let mut at = 0;
    let indent = lines[0].indent;
    let root = block(&mut lines, &mut at, indent);
    if let Some(line) = lines.get(at) {
        panic!("line {}: unexpected indentation", line.number);
    }
    root
}

/// The line without a comment: `#` at its start or after a space, outside quotes.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous == ' ' => return &line[..at],
            None => {}
        }
        previous = c;
    }
    line
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The block starting at `lines[*at]`, whose lines are indented by `indent`.
fn block(lines: &mut [Line], at: &mut usize, indent: usize) -> Yaml {
    if is_item(&lines[*at].text) {
        list(lines, at, indent)
    } else {
        map(lines, at, indent)
    }
}

fn list(lines: &mut [Line], at: &mut usize, indent: usize) -> Yaml {
    let mut items = Vec::new();
    while *at < lines.len() && lines[*at].indent == indent && is_item(&lines[*at].text) {
        let rest = lines[*at].text[1..].trim_start().to_owned();
        if rest.is_empty() {
            *at += 1;
            items.push(nested(lines, at, indent));
        } else if rest.starts_with(['[', '{', '"', '\'']) || key_value(&rest).is_none() {
            *at += 1;
            items.push(Yaml::Scalar(unquote(&rest)));
        } else {
            // `- key: value` opens a mapping whose keys line up with `key`.
            let line = &mut lines[*at];
            line.indent = indent + 2;
            line.text = rest;
            items.push(block(lines, at, indent + 2));
        }
    }
    Yaml::List(items)
}

fn map(lines: &mut [Line], at: &mut usize, indent: usize) -> Yaml {
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while *at < lines.len() && lines[*at].indent == indent && !is_item(&lines[*at].text) {
        let number = lines[*at].number;
        let (key, value) = key_value(&lines[*at].text)
            .unwrap_or_else(|| panic!("line {number}: neither `key: value` nor `- item`"));
        assert!(
            entries.iter().all(|(k, _)| *k != key),
            "line {number}: {key} repeated"
        );
        *at += 1;
        let value = if value.is_empty() {
            let sequence_here =
                *at < lines.len() && lines[*at].indent == indent && is_item(&lines[*at].text);
            if sequence_here {
                list(lines, at, indent)
            } else {
                nested(lines, at, indent)
            }
        } else {
            Yaml::Scalar(unquote(&value))
        };
        entries.push((key, value));
    }
    Yaml::Map(entries)
}

/// The block under a line at `indent` that ended with `:` or `-`; empty (null) when none.
fn nested(lines: &mut [Line], at: &mut usize, indent: usize) -> Yaml {
    match lines.get(*at) {
        Some(line) if line.indent > indent => {
            let inner = line.indent;
            block(lines, at, inner)
        }
        _ => Yaml::Scalar(String::new()),
    }
}

/// `key: value`, `key:`, `"quoted key": value`.
fn key_value(text: &str) -> Option<(String, String)> {
    let (key, rest) = if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted.find('"')?;
        (quoted[..end].to_owned(), &quoted[end + 1..])
    } else {
        let end = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..end].to_owned(), &text[end..])
    };
    let value = rest.strip_prefix(':')?;
    if !value.is_empty() && !value.starts_with(' ') {
        return None;
    }
    Some((key, value.trim().to_owned()))
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

#[test]
fn block_yaml_is_read_into_maps_lists_and_scalars() {
    let yaml = parse(
        "# a comment\n\
         a:\n  b: \"x # not a comment\"  # a comment\n  c:\n  - name: one\n    v: 1\n  - two\n\
         d: [1, 2]\n\"@type\": t\ne:\n- {k: v}\n",
    );
    assert_eq!(yaml.at(&["a", "b"]).scalar(), "x # not a comment");
    let items = yaml.at(&["a", "c"]).items();
    assert_eq!(items[0].at(&["name"]).scalar(), "one");
    assert_eq!(items[0].at(&["v"]).scalar(), "1");
    assert_eq!(items[1].scalar(), "two");
    assert_eq!(yaml.at(&["d"]).scalar(), "[1, 2]");
    assert_eq!(yaml.at(&["@type"]).scalar(), "t");
    assert_eq!(yaml.at(&["e"]).items(), [Yaml::Scalar("{k: v}".into())]);
}

#[test]
#[should_panic(expected = "line 3: unexpected indentation")]
fn a_line_indented_where_no_block_opens_is_refused() {
    parse("a:\n  b: 1\n    c: 2\n");
}
