//! `.dockerignore` matching. Any text is parsed or refused without a panic, and any path is matched
//! without one. Beyond that:
//! - against a reference model of Docker's own matcher (moby/patternmatcher: patterns turned into
//!   regular expressions, `MatchesOrParentMatches` and `MatchesUsingParentResults`), on the patterns
//!   where Docker's regular expressions mean what the pattern syntax says, `excluded` and a walk with
//!   `matches` give Docker's answers, and the same patterns are refused;
//! - without `!` patterns, a walk agrees with `excluded`, and an excluded directory excludes all below;
//! - only `!` patterns exclude nothing;
//! - `may_include_beneath` never lets the context walk skip a directory holding a re-included path;
//! - `keep` always re-includes its path;
//! - `parse` and `from_patterns` agree on files without comments.

#![no_main]

use eb_deploy::image::dockerignore::{Matcher, ParentMatches};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// The input, split on NUL: the `.dockerignore` text, a path to `keep` (empty: none), then paths to match.
/// Input starting with `\x01` is read in a small alphabet instead (each byte picks one of the wildcard,
/// separator and escape characters), where the interesting patterns are dense.
struct Input {
    text: String,
    keep: Option<String>,
    paths: Vec<String>,
}

const PATTERN_ALPHABET: &[char] =
    &['a', 'b', 'c', '/', '/', '*', '*', '?', '.', '\\', '!', '[', ']', '-', '^', ' ', '\n', '\n', '#', 'é'];
const PATH_ALPHABET: &[char] = &['a', 'b', 'c', '/', '/', '.', '*', '?', '[', ']', '\\', '-', '^', '\n', ' ', 'é', '!'];

impl Input {
    fn decode(data: &[u8]) -> Self {
        let (small, data) = match data.split_first() {
            Some((1, rest)) => (true, rest),
            _ => (false, data),
        };
        let mut parts = data.split(|b| *b == 0).enumerate().map(|(i, bytes)| {
            if small {
                let alphabet = if i == 0 { PATTERN_ALPHABET } else { PATH_ALPHABET };
                bytes.iter().map(|b| alphabet[usize::from(*b) % alphabet.len()]).collect()
            } else {
                String::from_utf8_lossy(bytes).into_owned()
            }
        });
        let text = parts.next().unwrap_or_default();
        let keep = parts.next().filter(|k| !k.is_empty());
        Input { text, keep, paths: parts.take(8).collect() }
    }
}

/// A path as the context walk produces it: relative, slash-separated, no empty, `.` or `..` parts.
fn clean_relative(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..").collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Excluded state of each prefix of `path`, walking like the context builder (parents first, results
/// handed down).
fn walk(matcher: &Matcher, path: &str) -> Vec<(String, bool, ParentMatches)> {
    let mut out = Vec::new();
    let mut parent = ParentMatches::default();
    let mut so_far = String::new();
    for part in path.split('/') {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        let (excluded, info) = matcher.matches(&so_far, &parent);
        out.push((so_far.clone(), excluded, info.clone()));
        parent = info;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let input = Input::decode(data);
    let text = input.text;
    let paths: Vec<String> = input.paths.iter().filter_map(|p| clean_relative(p)).collect();

    let parsed = Matcher::parse(&text);
    let reference = reference::compile(&text);
    if let Some(reference) = &reference {
        assert_eq!(parsed.is_ok(), reference.is_ok(), "Docker and eb-deploy disagree on validity: {parsed:?}");
    }
    let Ok(matcher) = parsed else { return };

    // `from_patterns` reads lines without comments, BOM or CR handling, so compare on plain files only.
    if !text.starts_with('\u{feff}') && !text.split('\n').any(|l| l.starts_with('#')) {
        let lines = Matcher::from_patterns(text.split('\n')).expect("parse accepted these lines");
        for path in &paths {
            assert_eq!(lines.excluded(path), matcher.excluded(path), "from_patterns differs on {path:?}");
        }
    }

    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines: Vec<&str> = body.split('\n').filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(matcher.is_empty(), lines.is_empty(), "pattern lines {lines:?}");
    let only_reincludes = lines.iter().all(|l| l.trim().starts_with('!'));

    for path in &paths {
        let full = matcher.excluded(path);
        let steps = walk(&matcher, path);
        let walked = steps.last().unwrap().1;

        if let Some(Ok(reference)) = &reference {
            assert_eq!(full, reference.matches_or_parent_matches(path), "excluded({path:?}) differs from Docker");
            let docker_walk = reference.walk(path);
            let ours: Vec<bool> = steps.iter().map(|s| s.1).collect();
            assert_eq!(ours, docker_walk, "walk to {path:?} differs from Docker");
        }

        if only_reincludes {
            assert!(!full && !walked, "only `!` patterns, yet {path:?} is excluded");
        }
        if !matcher.has_exclusions() {
            let mut any = false;
            for (prefix, excluded, _) in &steps {
                // Monotone: below an excluded directory everything is excluded.
                any |= *excluded;
                assert_eq!(*excluded, any, "{prefix:?} is included beneath an excluded directory");
                assert_eq!(*excluded, matcher.excluded(prefix), "walk and excluded disagree on {prefix:?}");
            }
        }
        // The walk skips an excluded directory unless `may_include_beneath` says otherwise: that must never
        // hide a path the walk would have sent.
        for (i, (dir, excluded, _)) in steps.iter().enumerate().take(steps.len() - 1) {
            if *excluded && !matcher.may_include_beneath(dir) {
                for (below, below_excluded, _) in &steps[i + 1..] {
                    assert!(*below_excluded, "{below:?} is sent, but the walk skips {dir:?}");
                }
                break;
            }
        }
    }

    if let Some(keep) = &input.keep
        && let Some(keep) = clean_relative(keep)
        && keep.trim() == keep
    {
        let mut kept = matcher.clone();
        kept.keep(&keep);
        assert!(kept.has_exclusions());
        assert!(!kept.excluded(&keep), "keep({keep:?}) did not re-include it");
        assert!(!walk(&kept, &keep).last().unwrap().1, "keep({keep:?}) did not re-include it in a walk");
        // Nothing else is re-included: a path that is not `keep` and not its parent keeps its state,
        // except beneath `keep` (a directory kept brings its content).
        for path in &paths {
            let related = *path == keep || path.starts_with(&format!("{keep}/"));
            if !related {
                assert_eq!(kept.excluded(path), matcher.excluded(path), "keep({keep:?}) changed {path:?}");
            }
        }
    }
});

/// Docker's matcher, as moby/patternmatcher and docker/cli's ignore-file reader implement it: cleaned
/// patterns compiled to regular expressions (with exact, prefix and suffix shortcuts). Only patterns whose
/// regular expression means what `filepath.Match` syntax says are modelled: `compile` gives `None`
/// for the rest (a `\d` that Go reads as a digit class, a wildcard inside `[...]`, a `^` outside one).
mod reference {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::Regex;
    use eb_deploy::image::dockerignore::clean;

    pub struct Pattern {
        exclusion: bool,
        kind: Kind,
    }

    enum Kind {
        Exact(String),
        Prefix(String),
        Suffix(String),
        Regexp(Regex),
    }

    pub struct Matcher(Vec<Pattern>);

    fn plain_char(c: char) -> bool {
        c.is_ascii_graphic() || c == ' ' || (!c.is_ascii() && c.is_alphabetic())
    }

    /// `None` when the text is outside the modelled subset; `Some(Err)` when Docker refuses it.
    pub fn compile(text: &str) -> Option<Result<Matcher, ()>> {
        if !text.chars().all(|c| plain_char(c) || c == '\n') {
            return None;
        }
        // docker/cli ignorefile.ReadAll.
        let mut patterns = Vec::new();
        for line in text.split('\n') {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (invert, mut pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim().to_owned()),
                None => (false, line.to_owned()),
            };
            if !pattern.is_empty() {
                pattern = clean(&pattern);
                if pattern.len() > 1 && pattern.starts_with('/') {
                    pattern.remove(0);
                }
            }
            patterns.push(if invert { format!("!{pattern}") } else { pattern });
        }
        // patternmatcher.New.
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, p) = match p.strip_prefix('!') {
                Some("") => return Some(Err(())),
                Some(rest) => (true, rest.to_owned()),
                None => (false, p),
            };
            match compile_one(&p)? {
                Ok(kind) => out.push(Pattern { exclusion, kind }),
                Err(()) => return Some(Err(())),
            }
        }
        Some(Ok(Matcher(out)))
    }

    /// Go's `filepath.Match(pattern, ".")` error, then `Pattern.compile`.
    fn compile_one(p: &str) -> Option<Result<Kind, ()>> {
        #[derive(PartialEq)]
        enum Type {
            Exact,
            Prefix,
            Suffix,
            Regexp,
        }
        let chars: Vec<char> = p.chars().collect();
        let mut re = String::from("^");
        let mut ty = Type::Exact;
        let mut i = 0;
        let mut iteration = 0;
        let mut bad = false;
        let mut caret = false;
        let mut lone_bracket = false;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        if ty == Type::Exact {
                            ty = Type::Prefix;
                        } else {
                            re.push_str(".*");
                            ty = Type::Regexp;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        ty = Type::Regexp;
                    }
                    if iteration == 0 {
                        ty = Type::Suffix;
                    }
                }
                '*' => {
                    re.push_str("[^/]*");
                    ty = Type::Regexp;
                }
                '?' => {
                    re.push_str("[^/]");
                    ty = Type::Regexp;
                }
                '\\' => match chars.get(i) {
                    Some(&next) => {
                        i += 1;
                        // Go's regexp reads `\d`, `\w`, `\pL`… as classes, not the literal letter.
                        if !next.is_ascii_punctuation() {
                            return None;
                        }
                        re.push_str(&regex::escape(&next.to_string()));
                        ty = Type::Regexp;
                    }
                    None => bad = true,
                },
                '[' => {
                    // A class: Docker copies it into the regular expression.
                    ty = Type::Regexp;
                    re.push('[');
                    if chars.get(i) == Some(&'^') {
                        re.push('^');
                        i += 1;
                    }
                    let mut ranges = 0;
                    loop {
                        match chars.get(i) {
                            None => {
                                bad = true;
                                break;
                            }
                            Some(']') if ranges > 0 => {
                                i += 1;
                                re.push(']');
                                break;
                            }
                            Some('-' | ']') => {
                                bad = true;
                                break;
                            }
                            Some(_) => {}
                        }
                        let lo = class_char(&chars, &mut i)?;
                        let Some(lo) = lo else {
                            bad = true;
                            break;
                        };
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') {
                            i += 1;
                            match chars.get(i) {
                                None | Some('-' | ']') => {
                                    bad = true;
                                    break;
                                }
                                Some(_) => {}
                            }
                            let Some(h) = class_char(&chars, &mut i)? else {
                                bad = true;
                                break;
                            };
                            hi = h;
                        }
                        // Go's filepath.Match needs a character after every range.
                        if i == chars.len() {
                            bad = true;
                            break;
                        }
                        if lo > hi {
                            // Go's regexp refuses the class at match time; not modelled.
                            return None;
                        }
                        re.push_str(&regex::escape(&lo.to_string()));
                        if hi != lo {
                            re.push('-');
                            re.push_str(&regex::escape(&hi.to_string()));
                        }
                        ranges += 1;
                    }
                    if bad {
                        break;
                    }
                }
                // A lone `]` is a literal for Go's regexp too, but Docker still takes the regexp path for it
                // (settled below).
                ']' => {
                    re.push_str(r"\]");
                    lone_bracket = true;
                }
                '^' => {
                    caret = true;
                    re.push_str(r"\^");
                }
                other => re.push_str(&regex::escape(&other.to_string())),
            }
            iteration += 1;
        }
        if bad {
            return Some(Err(()));
        }
        if lone_bracket && ty != Type::Regexp {
            if ty == Type::Prefix {
                re.push_str(".*");
            }
            ty = Type::Regexp;
        }
        if caret && ty == Type::Regexp {
            // Outside a class Go's regexp reads `^` as an anchor, not the character.
            return None;
        }
        Some(Ok(match ty {
            Type::Exact => Kind::Exact(p.to_owned()),
            Type::Prefix => Kind::Prefix(p[..p.len() - 2].to_owned()),
            Type::Suffix => Kind::Suffix(p[2..].to_owned()),
            Type::Regexp => {
                re.push('$');
                Kind::Regexp(cached_regex(&re))
            }
        }))
    }

    /// Regular expressions by source: fuzzing repeats the same patterns endlessly, and compiling them
    /// dominates the run time.
    fn cached_regex(source: &str) -> Regex {
        thread_local! {
            static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(re) = cache.get(source) {
                return re.clone();
            }
            if cache.len() >= 50_000 {
                cache.clear();
            }
            let re = Regex::new(source).expect("reference regex compiles");
            cache.insert(source.to_owned(), re.clone());
            re
        })
    }

    /// One class character (after an optional `\`); `Some(None)` when Go refuses it, `None` when
    /// Docker's copy into a regular expression would change its meaning.
    fn class_char(chars: &[char], i: &mut usize) -> Option<Option<char>> {
        let mut c = chars[*i];
        *i += 1;
        if c == '\\' {
            let Some(&next) = chars.get(*i) else { return Some(None) };
            *i += 1;
            if !next.is_ascii_punctuation() {
                return None;
            }
            c = next;
        } else if matches!(c, '*' | '?' | '[' | '\\') {
            return None;
        }
        Some(Some(c))
    }

    impl Pattern {
        fn matches(&self, path: &str) -> bool {
            match &self.kind {
                Kind::Exact(p) => path == p,
                Kind::Prefix(p) => path.starts_with(p.as_str()),
                Kind::Suffix(s) => path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|b| path == b),
                Kind::Regexp(re) => re.is_match(path),
            }
        }
    }

    fn parents(path: &str) -> Vec<&str> {
        path.match_indices('/').map(|(i, _)| &path[..i]).collect()
    }

    impl Matcher {
        /// `PatternMatcher.MatchesOrParentMatches`.
        pub fn matches_or_parent_matches(&self, file: &str) -> bool {
            let mut matched = false;
            for pattern in &self.0 {
                if pattern.exclusion != matched {
                    continue;
                }
                let m = pattern.matches(file) || parents(file).iter().any(|dir| pattern.matches(dir));
                if m {
                    matched = !pattern.exclusion;
                }
            }
            matched
        }

        /// `PatternMatcher.MatchesUsingParentResults` along the path, parents first.
        pub fn walk(&self, path: &str) -> Vec<bool> {
            let mut out = Vec::new();
            let mut parent: Vec<bool> = Vec::new();
            let mut so_far = String::new();
            for part in path.split('/') {
                if !so_far.is_empty() {
                    so_far.push('/');
                }
                so_far.push_str(part);
                let mut matched = false;
                let mut info = vec![false; self.0.len()];
                for (i, pattern) in self.0.iter().enumerate() {
                    let mut m = !parent.is_empty() && parent[i];
                    if !m {
                        if pattern.exclusion != matched {
                            continue;
                        }
                        m = pattern.matches(&so_far);
                        if !m && parent.is_empty() {
                            m = parents(&so_far).iter().any(|dir| pattern.matches(dir));
                        }
                    }
                    info[i] = m;
                    if m {
                        matched = !pattern.exclusion;
                    }
                }
                out.push(matched);
                parent = info;
            }
            out
        }
    }
}
