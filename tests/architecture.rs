//! The module order of docs/architecture.md, held against the code: data flows one way, so a module may
//! name only modules listed above it in the table "Modules and what each may import", and its row lists
//! exactly the modules it names. The table is read from the document, so the two cannot drift apart.
//!
//! What counts as naming a module: any path in code (not in comments or strings) that reaches another
//! top-level module — `crate::x::…`, `use crate::{x, y::z}`, `super::super::x`, `$crate::x` — tests included.
//! Doc links such as [`crate::config`] are comments and do not count: they make no dependency. A row may name
//! a submodule (`beanstalk::model`); it then owns that file and its own submodules, and the parent row the
//! rest. `lib.rs` and `main.rs` are the top, above every row, and exempt.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";
const SECTION: &str = "## Modules and what each may import";

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// `config`, `image`, `beanstalk::model`, as segments.
    module: Vec<String>,
    /// What the row says the module imports.
    imports: BTreeSet<String>,
}

/// One path in a source file that reaches a module of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// The absolute path it names, from the crate root.
    path: Vec<String>,
    line: usize,
}

#[test]
fn modules_name_only_modules_above_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = table(&fs::read_to_string(root.join(DOC)).expect("read docs/architecture.md"));
    let units: Vec<Vec<String>> = rows.iter().map(|r| r.module.clone()).collect();
    let mut problems = Vec::new();
    for (file, module) in source_files(&root.join("src")) {
        let shown = shown(root, &file);
        let Some(own) = unit_of(&units, &module) else {
            problems.push(format!(
                "{shown}: module `{}` is not in {DOC}'s table; add a row below every module it names",
                module.join("::")
            ));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {shown}: {e}"));
        // One complaint per line and module named: `use crate::x::{a, b}` names `x` once.
        let mut reported = BTreeSet::new();
        for reference in references(&text, &module) {
            let target = unit_of(&units, &reference.path);
            let key = (
                reference.line,
                target.map_or_else(|| reference.path[..1.min(reference.path.len())].to_vec(), |t| units[t].clone()),
            );
            if !reported.insert(key) {
                continue;
            }
            let Some(target) = target else {
                problems.push(format!(
                    "{shown}:{}: `crate::{}` is no module of {DOC}'s table",
                    reference.line,
                    reference.path.join("::")
                ));
                continue;
            };
            if target > own {
                problems.push(format!(
                    "{shown}:{}: `{}` names `{}` (crate::{}), which {DOC} lists after it; move what it needs to \
                     a module above `{}`, or reorder the table if no circle results",
                    reference.line,
                    units[own].join("::"),
                    units[target].join("::"),
                    reference.path.join("::"),
                    units[own].join("::"),
                ));
            }
        }
    }
    for unit in &units {
        let path = root.join("src").join(unit.join("/"));
        if !path.with_extension("rs").is_file() && !path.join("mod.rs").is_file() {
            problems.push(format!("{DOC}: `{}` has a row but no source under src/", unit.join("::")));
        }
    }
    assert!(problems.is_empty(), "the module order is broken:\n{}", problems.join("\n"));
}

#[test]
fn the_table_lists_what_each_module_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = table(&fs::read_to_string(root.join(DOC)).expect("read docs/architecture.md"));
    let units: Vec<Vec<String>> = rows.iter().map(|r| r.module.clone()).collect();
    // Per row: each module it names, and where first.
    let mut named: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    for (file, module) in source_files(&root.join("src")) {
        let Some(own) = unit_of(&units, &module) else { continue };
        let text = fs::read_to_string(&file).expect("read a source file");
        for reference in references(&text, &module) {
            if let Some(target) = unit_of(&units, &reference.path).filter(|t| *t != own) {
                let at = format!("{}:{}", shown(root, &file), reference.line);
                named.entry(own).or_default().entry(units[target].join("::")).or_insert(at);
            }
        }
    }
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let module = row.module.join("::");
        let names = named.remove(&i).unwrap_or_default();
        for (import, at) in &names {
            if !row.imports.contains(import) {
                problems.push(format!("`{module}` imports `{import}` ({at}), which its row does not list"));
            }
        }
        for import in row.imports.iter().filter(|i| !names.contains_key(*i)) {
            problems.push(format!("`{module}`'s row lists `{import}`, which it does not import"));
        }
    }
    assert!(problems.is_empty(), "{DOC}'s Imports column is not the truth:\n{}", problems.join("\n"));
}

/// The table's rows, in order: the first column's module, the last column's imports (`—` for none).
fn table(doc: &str) -> Vec<Row> {
    let start = doc.find(SECTION).unwrap_or_else(|| panic!("{DOC} has no section {SECTION:?}"));
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for line in doc[start..].lines().skip(1).skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let Some(module) = ticked(cells[0]).into_iter().next() else { continue };
        let module: Vec<String> = module.trim_end_matches('/').split("::").map(str::to_owned).collect();
        assert!(cells.len() >= 3, "{DOC}: the row of `{}` has no Imports column", module.join("::"));
        assert!(seen.insert(module.clone()), "{DOC}: `{}` has two rows", module.join("::"));
        let imports = ticked(cells[cells.len() - 1]).into_iter().map(|i| i.trim_end_matches('/').to_owned()).collect();
        rows.push(Row { module, imports });
    }
    assert!(rows.len() > 10, "{DOC}: found only {} rows under {SECTION:?}", rows.len());
    rows
}

/// The `code` spans of a table cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Every `.rs` file under `src/` with its module path (`src/image/build.rs` → `image::build`), except the
/// crate roots.
fn source_files(src: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src/").with_extension("");
            let mut module: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                continue;
            }
            files.push((path, module));
        }
    }
    files.sort();
    files
}

fn shown(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).display().to_string()
}

/// The row a module path belongs to: the longest row that is a prefix of it.
fn unit_of(units: &[Vec<String>], path: &[String]) -> Option<usize> {
    units.iter().enumerate().filter(|(_, u)| path.starts_with(u)).max_by_key(|(_, u)| u.len()).map(|(i, _)| i)
}

// ---- a small Rust lexer: enough to find paths, blind to comments, strings and characters ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Comma,
    Star,
    Semi,
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(chars[i] == '\n');
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i, 0, &mut line),
            '\'' => i = skip_quote(&chars, i),
            c if c.is_ascii_digit() => {
                while at(i).is_ascii_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                tokens.push(Token { tok: Tok::Other, line });
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let prefix = matches!(word.as_str(), "r" | "b" | "br" | "c" | "cr");
                if prefix && (at(i) == '"' || (at(i) == '#' && raw_string_ahead(&chars, i))) {
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    i = skip_string(&chars, i, hashes, &mut line);
                } else if word == "b" && at(i) == '\'' {
                    i = skip_quote(&chars, i);
                } else if word == "r" && at(i) == '#' {
                    // A raw identifier: `r#type`.
                    let start = i + 1;
                    i = start;
                    while at(i).is_alphanumeric() || at(i) == '_' {
                        i += 1;
                    }
                    tokens.push(Token { tok: Tok::Ident(chars[start..i].iter().collect()), line });
                } else {
                    tokens.push(Token { tok: Tok::Ident(word), line });
                }
            }
            ':' if at(i + 1) == ':' => {
                tokens.push(Token { tok: Tok::Sep, line });
                i += 2;
            }
            _ => {
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    ';' => Tok::Semi,
                    _ => Tok::Other,
                };
                tokens.push(Token { tok, line });
                i += 1;
            }
        }
    }
    tokens
}

/// Whether `#…#"` follows at `i` (a raw string rather than a raw identifier).
fn raw_string_ahead(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

/// Skips a string whose opening quote is at `i`, closed by `"` and `hashes` `#`s (0: an ordinary string,
/// with escapes); returns the index after it.
fn skip_string(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if hashes == 0 => i += 1,
            '\n' => *line += 1,
            '"' if chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes => {
                return i + 1 + hashes;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Skips a character literal (`'a'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`, `'static`) at `i`.
fn skip_quote(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        (Some(_), Some('\'')) => i + 3,
        _ => {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                j += 1;
            }
            j
        }
    }
}

/// Every path in `text` (the source of module `module`) that starts at the crate root (`crate::`,
/// `$crate::`), climbs to it (`super::`), or goes down into a child module declared in the file (`mod x;`
/// then `x::…`), as absolute paths.
fn references(text: &str, module: &[String]) -> Vec<Reference> {
    let tokens = lex(text);
    let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
    let ident = |i: usize| match tok(i) {
        Some(Tok::Ident(name)) => Some(name.as_str()),
        _ => None,
    };
    // Children declared as files (`mod x;` at the top of the file), which paths may go down into.
    let mut children = BTreeSet::new();
    let mut depth = 0usize;
    for i in 0..tokens.len() {
        match tok(i) {
            Some(Tok::Open) => depth += 1,
            Some(Tok::Close) => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0
            && ident(i) == Some("mod")
            && let Some(name) = ident(i + 1)
            && tok(i + 2) == Some(&Tok::Semi)
        {
            children.insert(name.to_owned());
        }
    }
    // Inline modules (`mod tests { … }`) with the brace depth they close at: `super` climbs out of them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        match tok(i) {
            Some(Tok::Open) => depth += 1,
            Some(Tok::Close) => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        if ident(i) == Some("mod")
            && let Some(name) = ident(i + 1)
            && tok(i + 2) == Some(&Tok::Open)
        {
            inline.push((name.to_owned(), depth + 1));
        }
        let Some(first) = ident(i) else { continue };
        if (i > 0 && tok(i - 1) == Some(&Tok::Sep)) || tok(i + 1) != Some(&Tok::Sep) {
            continue;
        }
        let mut here: Vec<String> = module.to_vec();
        here.extend(inline.iter().map(|(name, _)| name.clone()));
        let (prefix, from) = match first {
            "crate" => (Vec::new(), i + 2),
            "super" | "self" => (here, i),
            child if inline.is_empty() && children.contains(child) => (here, i),
            _ => continue,
        };
        use_tree(&tokens, from, prefix, &mut out);
    }
    out
}

/// Reads a path or a `use` tree at `i` below `prefix` (`a::b`, `a::{b, c::d}`, `super::x`, `self`, `*`),
/// collecting the paths it names; returns the index after it.
fn use_tree(tokens: &[Token], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Reference>) -> usize {
    let Some(token) = tokens.get(i) else { return i };
    match &token.tok {
        Tok::Open => {
            i += 1;
            loop {
                match tokens.get(i).map(|t| &t.tok) {
                    None => return i,
                    Some(Tok::Close) => return i + 1,
                    Some(Tok::Comma) => i += 1,
                    Some(_) => {
                        i = use_tree(tokens, i, prefix.clone(), out);
                        // `x as y`: the rename is no path.
                        while tokens.get(i).is_some_and(|t| !matches!(t.tok, Tok::Comma | Tok::Close)) {
                            i += 1;
                        }
                    }
                }
            }
        }
        Tok::Ident(name) => {
            match name.as_str() {
                "super" => {
                    prefix.pop();
                }
                "self" => {}
                _ => prefix.push(name.clone()),
            }
            if tokens.get(i + 1).is_some_and(|t| t.tok == Tok::Sep) {
                use_tree(tokens, i + 2, prefix, out)
            } else {
                out.push(Reference { path: prefix, line: token.line });
                i + 1
            }
        }
        _ => {
            out.push(Reference { path: prefix, line: token.line });
            i + usize::from(token.tok == Tok::Star)
        }
    }
}

#[test]
fn paths_are_read_as_the_compiler_reads_them() {
    let text = r####"
//! Names [`crate::engine`] in a doc link only.
use std::fmt;
use crate::{format::human_bytes, names::{self, reference_host as host}, gha::*};
use super::build::Prepared;
pub(crate) fn f<'a>(x: &'a str) -> char {
    let _ = "crate::report::Report";
    let _ = r#"crate::aws "quoted" "#;
    let _ = b'"';
    /* crate::wait::Watch /* nested */ crate::check */
    let _ = crate::config::Config::from_inputs;
    let _ = Self::new; let _ = other::crate_like::x;
    '{'
}
fn g() { child::run(); $crate::journal::Journal::new(); }
mod child;
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::verdict;
}
"####;
    let module = ["image".to_owned(), "buildkit".to_owned()];
    let found: Vec<(String, usize)> =
        references(text, &module).into_iter().map(|r| (r.path.join("::"), r.line)).collect();
    let want = [
        ("format::human_bytes", 4),
        ("names", 4),
        ("names::reference_host", 4),
        ("gha", 4),
        ("image::build::Prepared", 5),
        ("config::Config::from_inputs", 11),
        ("image::buildkit::child::run", 15),
        ("journal::Journal::new", 15),
        ("image::buildkit", 19),
        ("image::verdict", 20),
    ];
    let want: Vec<(String, usize)> = want.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(found, want);

    let units: Vec<Vec<String>> = [vec!["beanstalk"], vec!["beanstalk", "model"], vec!["image"]]
        .iter()
        .map(|u| u.iter().map(|s| s.to_string()).collect())
        .collect();
    let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(unit_of(&units, &path("beanstalk::model::Health")), Some(1));
    assert_eq!(unit_of(&units, &path("beanstalk::Health")), Some(0));
    assert_eq!(unit_of(&units, &path("engine::Engine")), None);
}

#[test]
fn the_table_is_read_with_its_imports() {
    let doc = format!(
        "intro\n\n{SECTION}\n\nSome words.\n\n| Module | What it is | Imports |\n|---|---|---|\n\
         | `format` | durations | — |\n| `beanstalk::model` | model | — |\n\
         | `image/` | building (with `tar`) | `format`, `beanstalk::model` |\n{}\nAfter the table: `x`.\n",
        (0..8).map(|i| format!("| `m{i}` | filler | `format` |\n")).collect::<String>()
    );
    let rows = table(&doc);
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[1].module, ["beanstalk", "model"]);
    assert_eq!(rows[2].module, ["image"]);
    assert_eq!(rows[2].imports, BTreeSet::from(["format".to_owned(), "beanstalk::model".to_owned()]));
    assert!(rows[0].imports.is_empty());
}
