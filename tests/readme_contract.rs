//! The README is what users copy from. Its inputs and outputs tables must say exactly what action.yml
//! declares (names, order, defaults, descriptions), and every `uses: team/eb-deploy@…` step in the README
//! and in examples/workflows may pass only real inputs, must pass the required ones, and may read only real
//! outputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

const ACTION: &str = "team/eb-deploy@";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// action.yml's inputs and outputs, in declaration order.
struct Action {
    /// (name, required, default, description)
    inputs: Vec<(String, bool, Option<String>, String)>,
    /// (name, description)
    outputs: Vec<(String, String)>,
}

fn action() -> Action {
    let yaml: Value = serde_yaml_ng::from_str(&read(&root().join("action.yml"))).expect("action.yml is YAML");
    let section = |key: &str| -> Mapping {
        yaml.get(key).and_then(Value::as_mapping).cloned().unwrap_or_else(|| panic!("action.yml has no `{key}`"))
    };
    let text = |entry: &Value, key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
    let inputs = section("inputs")
        .iter()
        .map(|(name, entry)| {
            let name = name.as_str().expect("input name").to_owned();
            let required = entry.get("required").and_then(Value::as_bool).unwrap_or(false);
            (name, required, text(entry, "default"), text(entry, "description").unwrap_or_default())
        })
        .collect();
    let outputs = section("outputs")
        .iter()
        .map(|(name, entry)| {
            (name.as_str().expect("output name").to_owned(), text(entry, "description").unwrap_or_default())
        })
        .collect();
    Action { inputs, outputs }
}

/// The README text between `## heading` and the next `## `.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("README has no `## {heading}`"));
    let body = &readme[start + 1..];
    let body = &body[body.find('\n').map_or(body.len(), |i| i + 1)..];
    body.find("\n## ").map_or(body, |end| &body[..end])
}

/// Splits a Markdown table row into cells, honouring `\|` escapes (unescaped in the result).
fn cells(row: &str) -> Vec<String> {
    let inner =
        row.trim().strip_prefix('|').and_then(|r| r.strip_suffix('|')).unwrap_or_else(|| panic!("not a row: {row}"));
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                out.last_mut().expect("cell").push('|');
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The body rows of the table whose header's first cell is `first`.
fn table(section: &str, first: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = section.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with('|') && cells(l).first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no table headed `{first}` under ## Inputs and outputs"));
    let separator = lines.get(header + 1).copied().unwrap_or_default();
    assert!(
        separator.trim_start().starts_with("|--") || separator.trim_start().starts_with("| --"),
        "`{first}` table has no separator row"
    );
    lines[header + 2..].iter().take_while(|l| l.trim_start().starts_with('|')).map(|l| cells(l)).collect()
}

/// `` `name` `` → `name`.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

#[test]
fn inputs_table_matches_action_yml() {
    let readme = read(&root().join("README.md"));
    let rows = table(section(&readme, "Inputs and outputs"), "Input");
    let action = action();

    let listed: Vec<&str> = rows.iter().map(|r| code(&r[0]).unwrap_or(&r[0])).collect();
    let declared: Vec<&str> = action.inputs.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(listed, declared, "README inputs table: names or order differ from action.yml");

    let mut problems = Vec::new();
    for (row, (name, required, default, description)) in rows.iter().zip(&action.inputs) {
        assert_eq!(row.len(), 3, "README input row for `{name}` needs 3 cells: {row:?}");
        let want_default = match (required, default) {
            (true, _) => "**required**".to_owned(),
            (false, Some(value)) => format!("`{value}`"),
            (false, None) => String::new(),
        };
        if row[1] != want_default {
            problems.push(format!("`{name}`: default cell {:?}, action.yml says {want_default:?}", row[1]));
        }
        if row[2] != *description {
            problems.push(format!(
                "`{name}`: description differs\n  README:     {:?}\n  action.yml: {description:?}",
                row[2]
            ));
        }
    }
    assert!(problems.is_empty(), "README inputs table disagrees with action.yml:\n{}", problems.join("\n"));
}

#[test]
fn outputs_table_matches_action_yml() {
    let readme = read(&root().join("README.md"));
    let rows = table(section(&readme, "Inputs and outputs"), "Output");
    let action = action();

    let listed: Vec<&str> = rows.iter().map(|r| code(&r[0]).unwrap_or(&r[0])).collect();
    let declared: Vec<&str> = action.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(listed, declared, "README outputs table: names or order differ from action.yml");
    for (row, (name, description)) in rows.iter().zip(&action.outputs) {
        assert_eq!(row.len(), 2, "README output row for `{name}` needs 2 cells: {row:?}");
        assert_eq!(row[1], *description, "README description of output `{name}` differs from action.yml");
    }
}

#[test]
fn the_table_parser_honours_escaped_pipes() {
    assert_eq!(cells(r"| `a` | `x\|y` | one \| two |"), vec!["`a`", "`x|y`", "one | two"]);
    assert_eq!(cells("| `b` |  | text |"), vec!["`b`", "", "text"]);
}

/// A step that uses the action: its `with:` keys and its `id`.
#[derive(Debug)]
struct Use {
    with: Vec<String>,
    id: Option<String>,
}

fn collect_uses(value: &Value, found: &mut Vec<Use>) {
    match value {
        Value::Mapping(m) => {
            if m.get("uses").and_then(Value::as_str).is_some_and(|u| u.starts_with(ACTION)) {
                let with = match m.get("with") {
                    Some(Value::Mapping(w)) => w.keys().map(|k| k.as_str().expect("with: key").to_owned()).collect(),
                    Some(other) => panic!("`with:` is not a mapping: {other:?}"),
                    None => Vec::new(),
                };
                found.push(Use { with, id: m.get("id").and_then(Value::as_str).map(str::to_owned) });
            }
            m.values().for_each(|v| collect_uses(v, found));
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_uses(v, found)),
        _ => {}
    }
}

/// `steps.ID.outputs.NAME` references in `text`.
fn output_references<'a>(text: &'a str, id: &str) -> Vec<&'a str> {
    let needle = format!("steps.{id}.outputs.");
    text.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Checks every use of the action in one YAML document; returns how many there were.
fn check_document(origin: &str, yaml: &str, action: &Action, problems: &mut Vec<String>) -> usize {
    let value: Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{origin}: not valid YAML ({e})"));
            return 0;
        }
    };
    let inputs: BTreeSet<&str> = action.inputs.iter().map(|(n, ..)| n.as_str()).collect();
    let required: Vec<&str> = action.inputs.iter().filter(|(_, r, ..)| *r).map(|(n, ..)| n.as_str()).collect();
    let outputs: BTreeSet<&str> = action.outputs.iter().map(|(n, _)| n.as_str()).collect();
    let mut uses = Vec::new();
    collect_uses(&value, &mut uses);
    for one in &uses {
        for key in &one.with {
            if !inputs.contains(key.as_str()) {
                problems.push(format!("{origin}: `with: {key}` is not an input of eb-deploy"));
            }
        }
        for name in &required {
            if !one.with.iter().any(|k| k == name) {
                problems.push(format!("{origin}: the step does not pass the required input `{name}`"));
            }
        }
        if let Some(id) = &one.id {
            for name in output_references(yaml, id) {
                if !outputs.contains(name) {
                    problems.push(format!("{origin}: `steps.{id}.outputs.{name}` is not an output of eb-deploy"));
                }
            }
        }
    }
    uses.len()
}

/// The fenced ```yaml blocks of a Markdown text that mention the action, with their line numbers.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    all_yaml_blocks(markdown).into_iter().filter(|(_, text)| text.contains(ACTION)).collect()
}

/// Every fenced ```yaml block of a Markdown text, with its line number.
fn all_yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```yaml") || fence.starts_with("```yml") => {
                current = Some((n + 1, String::new()))
            }
            Some(_) if fence.starts_with("```") => {
                blocks.push(current.take().expect("open block"));
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn readme_examples_pass_only_real_inputs() {
    let action = action();
    let readme = read(&root().join("README.md"));
    let mut problems = Vec::new();
    let mut count = 0;
    for (line, block) in yaml_blocks(&readme) {
        count += check_document(&format!("README.md, yaml block at line {line}"), &block, &action, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(count >= 2, "expected the README to show the action in use (found {count} steps)");
}

#[test]
fn example_workflows_pass_only_real_inputs() {
    let action = action();
    let dir = root().join("examples/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the three example workflows in {}", dir.display());
    let mut problems = Vec::new();
    for file in &files {
        let origin = file.strip_prefix(root()).unwrap_or(file).display().to_string();
        let found = check_document(&origin, &read(file), &action, &mut problems);
        if found == 0 {
            problems.push(format!("{origin}: does not use {ACTION}…"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readme_shows_the_example_workflows_as_they_are() {
    let readme = read(&root().join("README.md"));
    let shown: Vec<String> = all_yaml_blocks(section(&readme, "Workflows")).into_iter().map(|(_, t)| t).collect();
    for name in
        ["deploy-on-tag.yml", "deploy-staging.yml", "rollback.yml", "deploy-fleet.yml", "blue-green.yml", "preview.yml"]
    {
        let file = read(&root().join("examples/workflows").join(name));
        assert!(
            shown.contains(&file),
            "README's `## Workflows` must show examples/workflows/{name} verbatim in a ```yaml block; update it"
        );
    }
}

#[test]
fn the_checker_catches_a_wrong_input_and_output() {
    let action = action();
    let yaml = "- uses: team/eb-deploy@v1\n  id: d\n  with:\n    application-name: a\n    enviroment-name: e\n- run: echo ${{ steps.d.outputs.url }}\n";
    let mut problems = Vec::new();
    assert_eq!(check_document("sample", yaml, &action, &mut problems), 1);
    let all = problems.join("\n");
    assert!(all.contains("`with: enviroment-name` is not an input"), "{all}");
    assert!(all.contains("required input `environment-name`"), "{all}");
    assert!(all.contains("`steps.d.outputs.url` is not an output"), "{all}");
}
