//! The documentation a newcomer reads: a short README whose table of contents reaches every page
//! of `docs/`, links that resolve inside the repository, every variable the code reads in
//! `docs/configuration.md`, and every example under `examples/` loaded by some test.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// The files of `folder` (recursively) whose name ends with `suffix`.
fn files(folder: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// README.md and every page of docs/.
fn markdown_pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    pages.extend(files(&root().join("docs"), ".md"));
    pages
}

#[test]
fn the_readme_fits_in_250_lines() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move detail into docs/"
    );
}

#[test]
fn the_readme_links_every_page_of_docs() {
    let readme = root().join("README.md");
    let linked: BTreeSet<PathBuf> = links(&read(&readme))
        .into_iter()
        .filter_map(|link| {
            let (path, _) = split_anchor(&link);
            path.starts_with("docs/").then(|| root().join(path))
        })
        .collect();
    for page in files(&root().join("docs"), ".md") {
        assert!(
            linked.contains(&page),
            "README.md's table of contents does not link {}",
            page.display()
        );
    }
    for page in &linked {
        assert!(
            page.is_file(),
            "README.md links {}, which does not exist",
            page.display()
        );
    }
}

#[test]
fn no_file_points_outside_the_repository() {
    // Spelled in two parts so that this file does not hold what it looks for.
    let outside = format!("..{}shared", '/');
    let mut offenders = Vec::new();
    for path in repository_files() {
        if let Ok(bytes) = std::fs::read(root().join(&path))
            && bytes
                .windows(outside.len())
                .any(|window| window == outside.as_bytes())
        {
            offenders.push(path);
        }
    }
    assert!(offenders.is_empty(), "{outside} in {offenders:?}");
}

/// The repository's files (`git ls-files`), or every file outside the git-ignored folders when
/// git cannot say (a copy without `.git`).
fn repository_files() -> Vec<String> {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output();
    if let Ok(output) = listed
        && output.status.success()
    {
        return String::from_utf8(output.stdout)
            .unwrap()
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let ignored = [
        "target",
        ".git",
        ".tools",
        ".pgdata",
        "node_modules",
        ".schemathesis",
    ];
    let mut found = Vec::new();
    let mut folders = vec![root().to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !ignored.contains(&name.as_str()) {
                    folders.push(path);
                }
            } else {
                let relative = path.strip_prefix(root()).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_heading_of_the_repository() {
    let mut broken = Vec::new();
    for page in markdown_pages() {
        let text = read(&page);
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = split_anchor(&link);
            if path.starts_with('/') {
                broken.push(format!("{}: {link} (an absolute path)", page.display()));
                continue;
            }
            let target = if path.is_empty() {
                page.clone()
            } else {
                normalize(&page.parent().unwrap().join(path))
            };
            if !target.starts_with(root()) {
                broken.push(format!(
                    "{}: {link} (outside the repository)",
                    page.display()
                ));
            } else if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
            } else if let Some(anchor) = anchor
                && target.extension().is_some_and(|ext| ext == "md")
                && !heading_anchors(&read(&target)).contains(anchor)
            {
                broken.push(format!("{}: {link} (no such heading)", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `path#anchor` → (`path`, `anchor`).
fn split_anchor(link: &str) -> (&str, Option<&str>) {
    match link.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (link, None),
    }
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// The targets of the inline links `[text](target)` outside code blocks and code spans.
fn links(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(at, _)| at % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            found.push(target.to_owned());
            rest = &rest[end..];
        }
    }
    found
}

/// The anchors GitHub gives a page's headings: lowercased, punctuation dropped, spaces as
/// hyphens, a repeated one numbered (`-1`, `-2`).
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let text = heading.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let slug: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = slug.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{slug}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

#[test]
fn every_variable_the_code_reads_is_in_the_configuration_page() {
    let configuration = read(&root().join("docs/configuration.md"));
    let mut read_by_code = BTreeSet::new();
    let mut code = String::new();
    for file in files(&root().join("src"), ".rs") {
        let source = read(&file);
        for literal in string_literals(&source) {
            read_by_code.extend(variables(&literal));
        }
        code.push_str(&source);
    }
    assert!(
        read_by_code.contains("GATEHOUSE_LISTEN"),
        "the scan of src/ finds the variables: {read_by_code:?}"
    );
    let missing: Vec<&String> = read_by_code
        .iter()
        .filter(|variable| !configuration.contains(&format!("`{variable}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document {missing:?}"
    );

    // And the page names nothing the code (or a script) no longer reads. A provider's settings
    // are read by their suffix (`var("ISSUER")`).
    let mut scripts = String::new();
    for file in files(&root().join("scripts"), "") {
        scripts.push_str(&read(&file));
    }
    let read_somewhere = |variable: &String| {
        read_by_code.contains(variable)
            || scripts.contains(variable.as_str())
            || variable
                .strip_prefix("GATEHOUSE_OIDC_<NAME>_")
                .is_some_and(|setting| code.contains(&format!("\"{setting}\"")))
    };
    let stale: Vec<String> = variables(&configuration)
        .into_iter()
        .filter(|variable| !read_somewhere(variable))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md documents {stale:?}, which nothing reads"
    );
}

/// The `GATEHOUSE_*` variables named in `text`; a provider's own (`GATEHOUSE_OIDC_CORP_ISSUER`)
/// as the page writes them (`GATEHOUSE_OIDC_<NAME>_ISSUER`), and none of the prefixes a name is
/// built from (`GATEHOUSE_OIDC_{}_`).
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("GATEHOUSE_") {
        let after = &rest[at..];
        let end = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let mut name = after[..end].to_owned();
        rest = &after[end..];
        if rest.starts_with("<NAME>_") {
            let suffix_end = rest[7..]
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .map_or(rest.len(), |end| end + 7);
            name = format!("{name}{}", &rest[..suffix_end]);
            rest = &rest[suffix_end..];
        } else if let Some(provider) = name.strip_prefix("GATEHOUSE_OIDC_")
            && provider != "PROVIDERS"
            && let Some((_, setting)) = provider.split_once('_')
        {
            name = format!("GATEHOUSE_OIDC_<NAME>_{setting}");
        }
        if !name.ends_with('_') {
            found.insert(name);
        }
    }
    found
}

/// The contents of the string literals of Rust `source` (comments and char literals skipped).
fn string_literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut literals = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let word_before = at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
        if c == '/' && next == Some('/') {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            at += 2;
            while at + 1 < chars.len() && !(chars[at] == '*' && chars[at + 1] == '/') {
                at += 1;
            }
            at += 2;
        } else if c == 'r' && !word_before && matches!(next, Some('"' | '#')) {
            let mut hashes = 0;
            let mut open = at + 1;
            while chars.get(open) == Some(&'#') {
                hashes += 1;
                open += 1;
            }
            if chars.get(open) != Some(&'"') {
                at += 1;
                continue;
            }
            let start = open + 1;
            let mut end = start;
            while end < chars.len()
                && !(chars[end] == '"' && (1..=hashes).all(|i| chars.get(end + i) == Some(&'#')))
            {
                end += 1;
            }
            literals.push(chars[start..end.min(chars.len())].iter().collect());
            at = end + 1 + hashes;
        } else if c == '"' {
            let mut literal = String::new();
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                if chars[at] == '\\' {
                    at += 1;
                }
                if let Some(&c) = chars.get(at) {
                    literal.push(c);
                }
                at += 1;
            }
            literals.push(literal);
            at += 1;
        } else if c == '\'' {
            // A char literal ('"', '\'', '\u{1F600}') is skipped whole; a lifetime is one quote.
            if next == Some('\\') {
                at += 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
            } else if chars.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
            }
        } else {
            at += 1;
        }
    }
    literals
}

#[test]
fn the_reader_of_rust_finds_strings_and_skips_comments_and_chars() {
    let source = r###"
        // "GATEHOUSE_IN_A_COMMENT"
        let quote = '"'; let escaped = '\''; fn f<'a>(x: &'a str) {}
        let a = "GATEHOUSE_ONE and \"GATEHOUSE_TWO\"";
        let b = r#"GATEHOUSE_RAW "quoted""#; /* "GATEHOUSE_BLOCK" */
        let c = format!("GATEHOUSE_OIDC_{}_ISSUER", "CORP");
        let d = "GATEHOUSE_OIDC_CORP_CLIENT_ID";
    "###;
    let found: BTreeSet<String> = string_literals(source)
        .iter()
        .flat_map(|literal| variables(literal))
        .collect();
    let expected = [
        "GATEHOUSE_OIDC_<NAME>_CLIENT_ID",
        "GATEHOUSE_ONE",
        "GATEHOUSE_RAW",
        "GATEHOUSE_TWO",
    ];
    assert_eq!(found, expected.into_iter().map(str::to_owned).collect());
    assert_eq!(
        variables("`GATEHOUSE_OIDC_<NAME>_TRUST_EMAIL` and `GATEHOUSE_SCOPES`"),
        ["GATEHOUSE_OIDC_<NAME>_TRUST_EMAIL", "GATEHOUSE_SCOPES"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

#[test]
fn every_example_is_loaded_by_a_test() {
    let mut tests = String::new();
    for file in files(&root().join("tests"), ".rs") {
        // This file names the examples only to check them.
        if !file.ends_with("tests/it/docs.rs") {
            tests.push_str(&read(&file));
        }
    }
    let examples = files(&root().join("examples"), "");
    assert!(!examples.is_empty());
    let unloaded: Vec<String> = examples
        .iter()
        .map(|path| {
            path.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        // A cargo example is built by every `cargo test`.
        .filter(|path| !path.ends_with(".rs"))
        .filter(|path| {
            !tests.contains(&format!("\"{}\"", path.trim_start_matches("examples/")))
                && !tests.contains(path.as_str())
        })
        .collect();
    assert!(
        unloaded.is_empty(),
        "no test loads {unloaded:?}: load each example in a test, so what the docs show runs"
    );
}

#[test]
fn the_management_api_documents_key_fields_in_one_table() {
    let page = read(&root().join("docs/management-api.md"));
    let header = "| field | create | update | meaning |";
    assert_eq!(page.matches(header).count(), 1, "one table headed {header}");
    let rows: Vec<&str> = page
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(!rows.is_empty());
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "{row}");
        for answer in &cells[1..3] {
            assert!(matches!(*answer, "yes" | "no"), "{row}");
        }
    }
}

/// Every field the table lists.
fn documented_key_table() -> BTreeSet<String> {
    let page = read(&root().join("docs/management-api.md"));
    let header = "| field | create | update | meaning |";
    page.lines()
        .skip_while(|line| line.trim() != header)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            cells[0].trim_matches('`').to_owned()
        })
        .collect()
}

/// The key fields the table says a request takes: (create, update) field names.
fn documented_key_fields() -> (BTreeSet<String>, BTreeSet<String>) {
    let page = read(&root().join("docs/management-api.md"));
    let header = "| field | create | update | meaning |";
    let (mut create, mut update) = (BTreeSet::new(), BTreeSet::new());
    for row in page
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').to_owned();
        if cells[1] == "yes" {
            create.insert(name.clone());
        }
        if cells[2] == "yes" {
            update.insert(name);
        }
    }
    (create, update)
}

/// README's table, the OpenAPI document and the server agree on what making and changing a key
/// take: the same fields, and the create body takes everything PATCH takes but `disabled`.
#[sqlx::test]
async fn the_key_fields_of_the_docs_the_openapi_document_and_the_server_agree(pool: sqlx::PgPool) {
    use crate::support::management::{OPERATOR, management_api, post};
    let app = management_api(pool, &[]).await;
    let document: serde_json::Value = app
        .client()
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let properties = |schema: &str| -> BTreeSet<String> {
        document["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"))
            .keys()
            .cloned()
            .collect()
    };
    let (create, update) = documented_key_fields();
    let answered = properties("Key");
    let listed = documented_key_table();
    assert!(
        answered.is_subset(&listed),
        "every field of a key object is in the table: {:?} missing",
        answered.difference(&listed).collect::<Vec<_>>()
    );
    assert_eq!(create, properties("CreateKey"), "create: docs vs OpenAPI");
    assert_eq!(update, properties("UpdateKey"), "update: docs vs OpenAPI");
    let mut patchable = update.clone();
    patchable.remove("disabled");
    assert!(
        patchable.is_subset(&create),
        "create takes everything PATCH takes: {patchable:?} vs {create:?}"
    );
    // The server takes each documented create field (an unknown one is refused with 400).
    let made = post(
        &app,
        "/v1/tenants",
        OPERATOR,
        serde_json::json!({ "name": "Acme", "slug": "acme" }),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let sample = |field: &str| match field {
        "name" => serde_json::json!("k"),
        "environment" => serde_json::json!("test"),
        "full_access" => serde_json::json!(false),
        "scopes" => serde_json::json!(["read"]),
        "rate_limit" => serde_json::json!(10),
        "expires_at" => serde_json::json!("2030-01-01T00:00:00Z"),
        "note" => serde_json::json!("a note"),
        "meta" => serde_json::json!({ "plan": "pro" }),
        "ip_allowlist" => serde_json::json!(["203.0.113.0/24"]),
        other => panic!("no sample for the documented field {other}"),
    };
    let body: serde_json::Map<String, serde_json::Value> = create
        .iter()
        .map(|field| (field.clone(), sample(field)))
        .collect();
    let answer = post(&app, "/v1/tenants/acme/keys", OPERATOR, body.into()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let unknown = post(
        &app,
        "/v1/tenants/acme/keys",
        OPERATOR,
        serde_json::json!({ "name": "k", "environment": "test", "full_access": true, "colour": "red" }),
    )
    .await;
    assert_eq!(unknown.status, 400);
}

/// The event catalogue of the webhooks page is the code's: every type the code publishes is in the
/// table, and the table names no type the code does not know.
#[test]
fn the_webhook_catalogue_in_the_docs_is_the_code_s() {
    let page = read(&root().join("docs/webhooks.md"));
    let header = "| `type` | when | `data` |";
    let documented: BTreeSet<String> = page
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .flat_map(|row| {
            let first = row.trim_matches('|').split('|').next().unwrap_or_default();
            first
                .split(',')
                .map(|name| name.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let code: BTreeSet<String> = gatehouse::domain::webhooks::catalogue()
        .into_iter()
        .map(|(event_type, _)| event_type.to_owned())
        .collect();
    assert_eq!(documented, code);
    assert!(
        page.matches("\"actor\"").count() >= code.len() - 1,
        "every event's data shows its actor"
    );
}
