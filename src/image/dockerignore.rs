//! `.dockerignore` rules as the Docker CLI applies them to a build context.
//!
//! Written from the documented behaviour of moby/patternmatcher (pattern syntax, last match wins,
//! per-pattern parent results) and docker/cli (how the ignore file is read, which build files are
//! always sent). Deliberately not gitignore: there is no unanchored matching, `*` never crosses `/`,
//! and a pattern that matches a directory also matches everything beneath it.

use std::fmt;

/// A `.dockerignore` line that Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// 1-based line in the ignore file (0 for patterns not read from a file).
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: invalid pattern {:?}: {}", self.line, self.pattern, self.reason)
        } else {
            write!(f, "invalid pattern {:?}: {}", self.pattern, self.reason)
        }
    }
}

impl std::error::Error for PatternError {}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

/// Which patterns matched a directory (directly or through its own parents); children inherit it.
/// The default value means "nothing known", and ancestors are then checked from the path itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentMatches(Vec<bool>);

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned text without the leading `!`.
    text: String,
    /// A `!` pattern: re-includes what it matches.
    exclusion: bool,
    kind: Kind,
}

/// How a pattern is matched. Docker picks a shortcut for patterns without wildcards, and the
/// shortcuts have observable quirks (e.g. `**foo` matches `xfoo`), so they are kept as they are.
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// Literal text followed by a trailing `**`: the path must start with the text.
    Prefix(String),
    /// A leading `**` followed by literal text: the path must end with the text.
    Suffix(String),
    /// Anything else.
    Glob(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` inside a pattern: nothing, or any run of characters ending in `/`.
    Dirs,
    /// `**` at the end of a pattern: anything.
    Tail,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Matcher {
    /// Parses the text of a `.dockerignore` file the way the Docker CLI reads it.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut matcher = Matcher::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            // Only a `#` in the very first column starts a comment: "  #x" is the pattern "#x".
            if raw.starts_with('#') {
                continue;
            }
            let Some(pattern) = normalize_line(raw) else { continue };
            matcher.push(&pattern).map_err(|reason| PatternError {
                line: index + 1,
                pattern: raw.to_owned(),
                reason,
            })?;
        }
        Ok(matcher)
    }

    /// Builds a matcher from patterns already split into lines (comments are not recognised here).
    pub fn from_patterns<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, PatternError> {
        let mut matcher = Matcher::default();
        for raw in patterns {
            let raw = raw.as_ref();
            let Some(pattern) = normalize_line(raw) else { continue };
            matcher.push(&pattern).map_err(|reason| PatternError { line: 0, pattern: raw.to_owned(), reason })?;
        }
        Ok(matcher)
    }

    /// Makes sure `path` is sent even if a pattern excludes it (the Dockerfile and `.dockerignore`:
    /// the daemon needs them, and removes them itself afterwards if they were excluded).
    pub fn keep(&mut self, path: &str) {
        let cleaned = clean(path);
        let cleaned = cleaned.strip_prefix('/').unwrap_or(&cleaned).to_owned();
        // A literal re-include, as the CLI appends; escaping makes wildcard characters in the name literal.
        let mut escaped = String::from("!");
        for c in cleaned.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        // Escaped literals always compile.
        if self.push(&escaped).is_err() {
            tracing::debug!(path, "could not add a keep pattern");
        }
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern starts with `!`.
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// Whether `path` (slash-separated, relative to the context root) is excluded, given the results
    /// for its parent directory; also returns the results to hand to `path`'s own children.
    pub fn matches(&self, path: &str, parent: &ParentMatches) -> (bool, ParentMatches) {
        let known = !parent.0.is_empty() && parent.0.len() == self.patterns.len();
        let mut excluded = false;
        let mut results = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut matched = known && parent.0[i];
            if !matched {
                // Docker skips a pattern that could not change the outcome (an include when already
                // excluded, a `!` when not excluded) and records it as not matched; children see that.
                if pattern.exclusion != excluded {
                    continue;
                }
                matched = pattern.matches(path);
                if !matched && !known {
                    matched = ancestors(path).any(|dir| pattern.matches(dir));
                }
            }
            results[i] = matched;
            if matched {
                excluded = !pattern.exclusion;
            }
        }
        (excluded, ParentMatches(results))
    }

    /// Whether `path` is excluded, checking its ancestors too (no walk state needed).
    pub fn excluded(&self, path: &str) -> bool {
        self.matches(path, &ParentMatches::default()).0
    }

    /// Whether some `!` pattern could match a path strictly beneath the excluded directory `dir`,
    /// so the walk must still look inside it.
    pub fn may_include_beneath(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| match &p.kind {
            Kind::Exact => p.text.starts_with(&dir_slash),
            Kind::Prefix(prefix) => prefix.starts_with(&dir_slash) || dir_slash.starts_with(prefix.as_str()),
            Kind::Suffix(_) => true,
            Kind::Glob(tokens) => glob_prefix_alive(tokens, &dir_slash),
        })
    }

    fn push(&mut self, pattern: &str) -> Result<(), String> {
        // The matcher trims and cleans again after the ignore-file reader did.
        let pattern = clean(pattern.trim());
        let (exclusion, text) = match pattern.strip_prefix('!') {
            Some("") => return Err("a lone \"!\" is not a valid pattern".to_owned()),
            Some(rest) => (true, rest.to_owned()),
            None => (false, pattern),
        };
        validate_syntax(&text)?;
        let kind = compile(&text);
        self.has_exclusions |= exclusion;
        self.patterns.push(Pattern { text, exclusion, kind });
        Ok(())
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|bare| path == bare)
            }
            Kind::Glob(tokens) => glob_match(tokens, path),
        }
    }
}

/// One ignore-file line to the pattern the CLI hands to the matcher, or None for a blank line.
fn normalize_line(raw: &str) -> Option<String> {
    let line = raw.trim();
    if line.is_empty() {
        return None;
    }
    let (invert, rest) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let mut pattern = String::new();
    if !rest.is_empty() {
        let cleaned = clean(rest);
        // Patterns are relative to the context root: a leading `/` only anchors, which they all are.
        pattern = match cleaned.strip_prefix('/') {
            Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
            _ => cleaned,
        };
    }
    Some(if invert { format!("!{pattern}") } else { pattern })
}

/// Lexical path cleaning as Go's `filepath.Clean` does it on Unix (public for the fuzz target's model).
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// The ancestors of a relative path, shortest first ("a/b/c" → "a", "a/b").
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Rejects what Go's `filepath.Match` rejects: bad classes and a trailing backslash.
fn validate_syntax(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => {
                return Err("a trailing backslash escapes nothing".to_owned());
            }
            '[' => {
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                let mut ranges = 0;
                loop {
                    match chars.peek() {
                        None => return Err("unterminated character class \"[\"".to_owned()),
                        Some(']') if ranges > 0 => {
                            chars.next();
                            break;
                        }
                        Some(_) => {}
                    }
                    class_char(&mut chars)?;
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        class_char(&mut chars)?;
                    }
                    ranges += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    match chars.next() {
        None => Err("unterminated character class \"[\"".to_owned()),
        Some('-' | ']') => Err("a character class needs a character before \"-\" or \"]\"".to_owned()),
        Some('\\') => chars.next().ok_or_else(|| "unterminated character class \"[\"".to_owned()),
        Some(c) => Ok(c),
    }
}

/// Chooses the match kind and, for globs, the tokens; mirrors Docker's pattern compiler.
fn compile(text: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Glob,
    }
    let mut detected = Detected::Exact;
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is treated as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        tokens.push(Token::Tail);
                        detected = Detected::Glob;
                    }
                } else {
                    tokens.push(Token::Dirs);
                    detected = Detected::Glob;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                detected = Detected::Glob;
            }
            '?' => {
                tokens.push(Token::One);
                detected = Detected::Glob;
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    tokens.push(Token::Lit(next));
                    detected = Detected::Glob;
                }
                None => tokens.push(Token::Lit('\\')),
            },
            '[' => {
                let (token, used) = parse_class(&chars[i..]);
                i += used;
                tokens.push(token);
                detected = Detected::Glob;
            }
            // Docker compiles any pattern with a `]` to a regular expression (where a lone `]` is
            // literal), so the text shortcuts must not apply to it.
            ']' => {
                tokens.push(Token::Lit(']'));
                detected = Detected::Glob;
            }
            other => tokens.push(Token::Lit(other)),
        }
        first = false;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        // The shortcuts compare raw text: the pattern minus its trailing or leading `**`.
        Detected::Prefix => Kind::Prefix(text[..text.len() - 2].to_owned()),
        Detected::Suffix => Kind::Suffix(text[2..].to_owned()),
        Detected::Glob => Kind::Glob(tokens),
    }
}

/// Parses a class body (after `[`), already validated; returns the token and characters used.
fn parse_class(chars: &[char]) -> (Token, usize) {
    let mut i = 0;
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let next_char = |i: &mut usize| -> char {
        let mut c = chars.get(*i).copied().unwrap_or(']');
        *i += 1;
        if c == '\\' {
            c = chars.get(*i).copied().unwrap_or('\\');
            *i += 1;
        }
        c
    };
    while i < chars.len() && (chars[i] != ']' || ranges.is_empty()) {
        let lo = next_char(&mut i);
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = next_char(&mut i);
        }
        ranges.push((lo, hi));
    }
    // Skip the closing bracket.
    (Token::Class { negated, ranges }, (i + 1).min(chars.len()))
}

fn class_matches(negated: bool, ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
}

/// NFA state: token index, and whether we are inside a `**/` run that still needs its `/`.
type State = (usize, bool);

fn closure(tokens: &[Token], states: &mut Vec<State>) {
    let mut i = 0;
    while i < states.len() {
        let (at, inside) = states[i];
        if !inside && matches!(tokens.get(at), Some(Token::Star | Token::Dirs | Token::Tail)) {
            let next = (at + 1, false);
            if !states.contains(&next) {
                states.push(next);
            }
        }
        i += 1;
    }
}

fn step(tokens: &[Token], states: &[State], c: char) -> Vec<State> {
    let mut next = Vec::new();
    let mut add = |s: State| {
        if !next.contains(&s) {
            next.push(s);
        }
    };
    for &(at, inside) in states {
        let Some(token) = tokens.get(at) else { continue };
        if inside {
            // Inside `(.*/)?`: any character (Go's `.` excludes newline); a `/` may end the run.
            if c != '\n' {
                add((at, true));
            }
            if c == '/' {
                add((at + 1, false));
            }
            continue;
        }
        match token {
            Token::Lit(l) if *l == c => add((at + 1, false)),
            Token::One if c != '/' => add((at + 1, false)),
            Token::Star if c != '/' => add((at, false)),
            Token::Tail if c != '\n' => add((at, false)),
            Token::Dirs if c != '\n' => {
                add((at, true));
                if c == '/' {
                    add((at + 1, false));
                }
            }
            Token::Class { negated, ranges } if class_matches(*negated, ranges, c) => add((at + 1, false)),
            _ => {}
        }
    }
    closure(tokens, &mut next);
    next
}

fn run(tokens: &[Token], input: &str) -> Vec<State> {
    let mut states = vec![(0, false)];
    closure(tokens, &mut states);
    for c in input.chars() {
        states = step(tokens, &states, c);
        if states.is_empty() {
            break;
        }
    }
    states
}

fn glob_match(tokens: &[Token], path: &str) -> bool {
    run(tokens, path).contains(&(tokens.len(), false))
}

/// True if some string starting with `prefix` (and longer than it) could match.
fn glob_prefix_alive(tokens: &[Token], prefix: &str) -> bool {
    run(tokens, prefix).iter().any(|&(at, inside)| inside || at < tokens.len() || tokens.last() == Some(&Token::Tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    /// Excluded paths among `paths`, walking like the context builder (parents first, results passed down).
    fn walk(matcher: &Matcher, paths: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for path in paths {
            let mut parent = ParentMatches::default();
            let mut excluded = false;
            let mut so_far = String::new();
            for part in path.split('/') {
                if !so_far.is_empty() {
                    so_far.push('/');
                }
                so_far.push_str(part);
                let (e, info) = matcher.matches(&so_far, &parent);
                excluded = e;
                parent = info;
            }
            if excluded {
                out.push((*path).to_owned());
            }
        }
        out
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let matcher = m("# a comment\n\n   \nfoo   \n\t bar\n  #hash\r\n");
        assert!(matcher.excluded("foo"));
        assert!(matcher.excluded("bar"));
        // Only column-one `#` is a comment; indented it is a pattern for a file named `#hash`.
        assert!(matcher.excluded("#hash"));
        assert!(!matcher.excluded("# a comment"));
        assert_eq!(matcher.patterns.len(), 3);
    }

    #[test]
    fn utf8_bom_is_ignored() {
        assert!(m("\u{feff}foo\n").excluded("foo"));
    }

    #[test]
    fn patterns_are_cleaned_and_root_anchored() {
        let matcher = m("/foo\n./bar/\nbaz//qux\na/../b\n/\n");
        assert!(matcher.excluded("foo"));
        assert!(matcher.excluded("bar"));
        assert!(matcher.excluded("bar/x"));
        assert!(matcher.excluded("baz/qux"));
        assert!(matcher.excluded("b"));
        assert!(!matcher.excluded("a"));
        // Anchored: `foo` does not match deeper files of the same name.
        assert!(!matcher.excluded("sub/foo"));
        // `/` alone matches nothing.
        assert!(!m("/\n").excluded("x"));
    }

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("a/./b/"), "a/b");
        assert_eq!(clean("../a/.."), "..");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("//"), "/");
        assert_eq!(clean("a/b/../../.."), "..");
    }

    #[test]
    fn star_and_question_do_not_cross_slash() {
        let matcher = m("*.log\nsrc/?.rs\n");
        assert!(matcher.excluded("a.log"));
        assert!(!matcher.excluded("dir/a.log"));
        assert!(matcher.excluded("src/a.rs"));
        assert!(!matcher.excluded("src/ab.rs"));
        assert!(!matcher.excluded("src/x/a.rs"));
        assert!(m("*/*.log\n").excluded("dir/a.log"));
        assert!(m("a*b\n").excluded("ab"));
        assert!(!m("a*b\n").excluded("a/b"));
        assert!(!m("?\n").excluded("ab"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let matcher = m("**/*.tmp\n");
        assert!(matcher.excluded("a.tmp"));
        assert!(matcher.excluded("x/y/z/a.tmp"));
        assert!(!matcher.excluded("a.tmpx"));
        let mid = m("a/**/b\n");
        assert!(mid.excluded("a/b"));
        assert!(mid.excluded("a/x/b"));
        assert!(mid.excluded("a/x/y/b"));
        assert!(!mid.excluded("a/xb"));
        let tail = m("cache/**\n");
        assert!(tail.excluded("cache/x"));
        assert!(tail.excluded("cache/x/y"));
        assert!(!tail.excluded("cache"));
        assert!(m("**\n").excluded("anything/at/all"));
        assert!(m("**/node_modules\n").excluded("node_modules"));
        assert!(m("**/node_modules\n").excluded("a/b/node_modules/x"));
        // Docker's quirks, kept: `**foo` is a plain suffix test, `a**b` needs a slash boundary.
        assert!(m("**foo\n").excluded("xfoo"));
        assert!(m("a**b\n").excluded("ab"));
        assert!(m("a**b\n").excluded("a/x/b"));
        assert!(!m("a**b\n").excluded("axb"));
        assert!(m("a**\n").excluded("abc/d"));
    }

    #[test]
    fn character_classes() {
        let matcher = m("file[0-9].txt\nlog[^a-c]\n[xy]z\n");
        assert!(matcher.excluded("file7.txt"));
        assert!(!matcher.excluded("fileA.txt"));
        assert!(matcher.excluded("logd"));
        assert!(!matcher.excluded("logb"));
        assert!(matcher.excluded("xz"));
        assert!(matcher.excluded("yz"));
        assert!(!matcher.excluded("zz"));
        assert!(m("a[\\]]b\n").excluded("a]b"));
    }

    #[test]
    fn backslash_escapes() {
        let matcher = m("\\*.txt\nq\\?\n");
        assert!(matcher.excluded("*.txt"));
        assert!(!matcher.excluded("a.txt"));
        assert!(matcher.excluded("q?"));
        assert!(!matcher.excluded("qx"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let matcher = m("a.b\nc+d\n(e)\n{f}|$g\n");
        assert!(matcher.excluded("a.b"));
        assert!(!matcher.excluded("axb"));
        assert!(matcher.excluded("c+d"));
        assert!(matcher.excluded("(e)"));
        assert!(matcher.excluded("{f}|$g"));
        assert!(m("*.b\n").excluded("a.b"));
        assert!(!m("*.b\n").excluded("ab"));
    }

    #[test]
    fn invalid_patterns_are_rejected_with_their_line() {
        let err = Matcher::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("[abc"), "{err}");
        assert!(Matcher::parse("!\n").is_err());
        assert!(Matcher::parse("! \n").is_err());
        assert!(Matcher::parse("a\\\n").is_err());
        assert!(Matcher::parse("[]a]\n").is_err());
        assert!(Matcher::parse("[a-]\n").is_err());
        assert!(Matcher::parse("[-a]\n").is_err());
        assert!(Matcher::parse("[a-z]\n").is_ok());
    }

    #[test]
    fn parent_directory_match_excludes_children() {
        let matcher = m("build\nsrc/gen\n");
        assert!(matcher.excluded("build/out/app"));
        assert!(matcher.excluded("src/gen/a.rs"));
        assert!(!matcher.excluded("src/main.rs"));
        assert_eq!(walk(&matcher, &["build/a/b", "src/gen/x", "src/x"]), vec!["build/a/b", "src/gen/x"]);
    }

    #[test]
    fn last_matching_pattern_wins() {
        let matcher = m("*.md\n!README.md\nREADME.md\n");
        assert!(matcher.excluded("README.md"));
        let matcher = m("*.md\n!README.md\n");
        assert!(!matcher.excluded("README.md"));
        assert!(matcher.excluded("CHANGES.md"));
        let matcher = m("!keep\n*\n");
        assert!(matcher.excluded("keep"));
    }

    #[test]
    fn exclusion_reincludes_beneath_an_excluded_directory() {
        let matcher = m("docs\n!docs/keep.md\n!docs/sub\n");
        assert_eq!(
            walk(&matcher, &["docs/a.md", "docs/keep.md", "docs/sub/x", "docs/sub/y/z", "docs/other/x"]),
            vec!["docs/a.md", "docs/other/x"]
        );
        assert!(matcher.may_include_beneath("docs"));
        assert!(!matcher.may_include_beneath("other"));
        // Per-pattern parent results: `docs/sub` matched `!docs/sub`, so its children stay included.
        let (_, info) = matcher.matches("docs", &ParentMatches::default());
        let (excluded, info) = matcher.matches("docs/sub", &info);
        assert!(!excluded);
        assert!(!matcher.matches("docs/sub/deep", &info).0);
    }

    #[test]
    fn docker_skip_quirk_is_preserved() {
        // Docker records a skipped pattern as "not matched" for the children of a directory, so a
        // repeated include after a re-include does not re-exclude `a/f` during a walk.
        let matcher = m("a\n!a/f\na\n");
        assert_eq!(walk(&matcher, &["a/f", "a/g"]), vec!["a/g"]);
    }

    #[test]
    fn may_include_beneath_understands_wildcards() {
        let matcher = m("vendor\n!vendor/*/LICENSE\n!**/keep\n");
        assert!(matcher.may_include_beneath("vendor"));
        assert!(matcher.may_include_beneath("vendor/lib"));
        assert!(matcher.may_include_beneath("anything"));
        let matcher = m("vendor\n!vendor/*/LICENSE\n");
        assert!(matcher.may_include_beneath("vendor/lib"));
        assert!(!matcher.may_include_beneath("vendor/lib/deeper"));
        assert!(!matcher.may_include_beneath("other"));
        let matcher = m("a\n!a/b/**\n");
        assert!(matcher.may_include_beneath("a"));
        assert!(matcher.may_include_beneath("a/b"));
        assert!(matcher.may_include_beneath("a/b/c"));
        assert!(!matcher.may_include_beneath("a/c"));
        // No `!` patterns: nothing beneath an excluded directory can come back.
        assert!(!m("a\n").may_include_beneath("a"));
    }

    #[test]
    fn keep_reincludes_build_files() {
        let mut matcher = m("*\n");
        matcher.keep("Dockerfile");
        matcher.keep(".dockerignore");
        assert!(!matcher.excluded("Dockerfile"));
        assert!(!matcher.excluded(".dockerignore"));
        assert!(matcher.excluded("other"));
        let mut nested = m("build\n");
        nested.keep("build/Dockerfile.[prod]");
        assert!(!nested.excluded("build/Dockerfile.[prod]"));
        assert!(nested.excluded("build/Dockerfile.p"));
        assert!(nested.may_include_beneath("build"));
    }

    #[test]
    fn exclusion_of_leading_slash_and_spaces() {
        let matcher = m("*\n! /keep \n");
        assert!(!matcher.excluded("keep"));
        assert!(matcher.excluded("other"));
    }

    #[test]
    fn from_patterns_matches_parse() {
        let a = Matcher::from_patterns(["*.o", "!keep.o"]).unwrap();
        assert!(a.excluded("x.o"));
        assert!(!a.excluded("keep.o"));
        assert!(a.has_exclusions());
        assert!(!Matcher::from_patterns(["x"]).unwrap().has_exclusions());
        assert!(Matcher::default().is_empty());
    }
}
