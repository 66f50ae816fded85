//! A small YAML emitter for JSON values, in block style.
//!
//! Why our own: the exported documents are plain JSON trees (maps, lists, strings,
//! numbers), `serde_yaml` is unmaintained (deprecated by its author in 2024), and the
//! maintained forks add a dependency for what is forty lines here. Every string that is
//! not plainly a word is written as a JSON string, which is also a valid YAML
//! double-quoted scalar, so no value can be misread (`yes`, `0.10`, `{{item}}`, `: `).

use serde_json::Value;

/// `v` as a YAML document.
pub(crate) fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => list(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a map that is a list item goes on the item's `- ` line.
        if i > 0 || indent == 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(k));
        out.push(':');
        value(out, v, indent);
    }
}

fn list(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(out, m, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                list(out, inner, indent + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` of a map at `indent`.
fn value(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, indent + 2);
        }
        // Lists of a map's key sit at the key's own indent, as kubectl writes them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            list(out, a, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// A string plain when it can only be read back as that string, else JSON-quoted.
fn string(s: &str) -> String {
    const WORDS: [&str; 11] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "",
    ];
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_lists_in_block_style() {
        let v = json!({
            "kind": "WorkflowTemplate",
            "spec": {
                "args": ["step", "{{item}}", "0.10", "yes", ""],
                "tasks": [{"name": "a", "dependencies": ["b"]}, {"name": "c"}],
                "empty": {},
                "none": [],
                "n": 3,
            }
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "kind: WorkflowTemplate\nspec:\n  args:\n  - step\n  - \"{{item}}\"\n  - \"0.10\"\n  - \"yes\"\n  - \"\"\n  empty: {}\n  \"n\": 3\n  none: []\n  tasks:\n  - dependencies:\n    - b\n    name: a\n  - name: c\n"
        );
    }
}
