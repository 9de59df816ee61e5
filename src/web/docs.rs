//! `/docs/api`: the API reference, rendered on the server from the OpenAPI document the API
//! serves at `/v1/openapi.json` (no script, no CDN).

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::Value;

use super::Visitor;
use super::page::{Layout, render};
use crate::app::AppState;
use crate::error::AppResult;

/// The reference page of `api_document`, the OpenAPI document of `/v1` as JSON (built where
/// the router is assembled, from the API's code).
pub fn router(api_document: &'static str) -> Router<AppState> {
    Router::new().route(
        "/docs/api",
        get(move |visitor: Visitor| show_api_reference(api_document, visitor)),
    )
}

struct Parameter {
    name: String,
    location: String,
    kind: String,
    required: bool,
    description: String,
}

struct Answer {
    status: String,
    description: String,
    schema: String,
}

struct Operation {
    anchor: String,
    method: String,
    path: String,
    description: String,
    security: String,
    parameters: Vec<Parameter>,
    body: String,
    answers: Vec<Answer>,
}

struct Section {
    name: String,
    description: String,
    operations: Vec<Operation>,
}

struct Field {
    name: String,
    kind: String,
    required: bool,
    description: String,
}

struct Schema {
    name: String,
    fields: Vec<Field>,
}

#[derive(Template)]
#[template(path = "docs/api.html")]
struct ApiReferencePage {
    layout: Layout,
    title: String,
    description: String,
    sections: Vec<Section>,
    schemas: Vec<Schema>,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A schema as a short type: `string`, `Key`, `array of string`, `string (date-time)`, `… or null`.
fn kind(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or_default().to_owned();
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            return options.iter().map(kind).collect::<Vec<_>>().join(" or ");
        }
    }
    let base = match &schema["type"] {
        Value::Array(types) => types.iter().map(text).collect::<Vec<_>>().join(" or "),
        Value::String(single) => single.clone(),
        _ => "any".into(),
    };
    let base = if base.starts_with("array") {
        base.replacen("array", &format!("array of {}", kind(&schema["items"])), 1)
    } else {
        base
    };
    match schema["format"].as_str() {
        Some(format) => format!("{base} ({format})"),
        None => base,
    }
}

fn operations(document: &Value) -> Vec<(String, Operation)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let security = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|requirement| {
                    let (scheme, scopes) = requirement.as_object()?.iter().next()?;
                    let scopes: Vec<String> = scopes.as_array()?.iter().map(text).collect();
                    Some(if scopes.is_empty() {
                        scheme.replace('_', " ")
                    } else {
                        format!("{} ({})", scheme.replace('_', " "), scopes.join(", "))
                    })
                })
                .collect::<Vec<_>>()
                .join(" or ");
            let parameters = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|parameter| Parameter {
                    name: text(&parameter["name"]),
                    location: text(&parameter["in"]),
                    kind: kind(&parameter["schema"]),
                    required: parameter["required"].as_bool().unwrap_or(false),
                    description: prose(&text(&parameter["description"])),
                })
                .collect();
            let answers = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, answer)| Answer {
                    status: status.clone(),
                    description: prose(&text(&answer["description"])),
                    schema: answer["content"]["application/json"]["schema"]
                        .as_object()
                        .map(|_| kind(&answer["content"]["application/json"]["schema"]))
                        .unwrap_or_default(),
                })
                .collect();
            let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
            found.push((
                tag,
                Operation {
                    anchor: format!("{method}-{path}")
                        .replace(['/', '{', '}'], "-")
                        .replace("--", "-"),
                    method: method.to_uppercase(),
                    path: path.clone(),
                    description: prose(&text(&operation["description"])),
                    security,
                    parameters,
                    body: operation["requestBody"]["content"]["application/json"]["schema"]
                        .as_object()
                        .map(|_| {
                            kind(&operation["requestBody"]["content"]["application/json"]["schema"])
                        })
                        .unwrap_or_default(),
                    answers,
                },
            ));
        }
    }
    found
}

fn schemas(document: &Value) -> Vec<Schema> {
    document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Schema {
                name: name.clone(),
                fields: schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, property)| Field {
                        name: field.clone(),
                        kind: kind(property),
                        required: required.contains(&field.as_str()),
                        description: prose(&text(&property["description"])),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The OpenAPI document's prose as HTML: escaped, with its Markdown `code` spans as `<code>`
/// (an unpaired backtick stays as it is).
fn prose(text: &str) -> String {
    let pieces: Vec<&str> = text.split('`').collect();
    let last = pieces.len() - 1;
    let mut html = String::with_capacity(text.len() + 16);
    for (at, piece) in pieces.iter().enumerate() {
        let escaped = escape(piece);
        match (at % 2 == 1, at == last) {
            (true, false) => {
                html.push_str("<code>");
                html.push_str(&escaped);
                html.push_str("</code>");
            }
            (true, true) => {
                html.push('`');
                html.push_str(&escaped);
            }
            (false, _) => html.push_str(&escaped),
        }
    }
    html
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn show_api_reference(api_document: &str, visitor: Visitor) -> AppResult<Html<String>> {
    let document: Value = serde_json::from_str(api_document).unwrap_or(Value::Null);
    let mut sections: Vec<Section> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| Section {
            name: text(&tag["name"]),
            description: prose(&text(&tag["description"])),
            operations: Vec::new(),
        })
        .collect();
    for (tag, operation) in operations(&document) {
        match sections.iter_mut().find(|section| section.name == tag) {
            Some(section) => section.operations.push(operation),
            None => sections.push(Section {
                name: tag,
                description: String::new(),
                operations: vec![operation],
            }),
        }
    }
    render(&ApiReferencePage {
        layout: visitor.layout().await?,
        title: text(&document["info"]["title"]),
        description: prose(&text(&document["info"]["description"])),
        sections,
        schemas: schemas(&document),
    })
}

#[cfg(test)]
mod tests {
    use super::prose;

    #[test]
    fn prose_renders_code_spans_and_escapes_the_rest() {
        assert_eq!(
            prose("Send `Gatehouse-Verifier` <now> & `x`"),
            "Send <code>Gatehouse-Verifier</code> &lt;now&gt; &amp; <code>x</code>"
        );
        assert_eq!(prose("an unpaired ` stays"), "an unpaired ` stays");
    }
}
