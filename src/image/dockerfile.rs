//! Just enough of the Dockerfile grammar to point an error at the right line: where each
//! instruction starts, honouring parser directives, comments, line continuations and heredocs;
//! which stage it belongs to; and which BuildKit step (`[stage 2/5] RUN …`) it is.

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line the instruction starts on.
    pub line: u32,
    /// The instruction, upper case (`RUN`, `COPY`, …).
    pub keyword: String,
    /// Its arguments, continuation lines joined (heredoc bodies left out).
    pub args: String,
}

/// Every instruction, in order. "Step N/M" in a classic build log is the N-th of these (build-time
/// ARGs before the first FROM count as steps too).
pub fn instructions(text: &str) -> Vec<Instruction> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let mut directives_allowed = true;
    let mut out: Vec<Instruction> = Vec::new();
    let mut continuing = false;
    // Terminators of the heredocs the current instruction opened, in the order their bodies come.
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if !continuing && let Some((name, strip_tabs)) = heredocs.first() {
            let candidate = if *strip_tabs { line.trim_start_matches('\t') } else { line };
            if candidate == name {
                heredocs.remove(0);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            if directives_allowed {
                match parse_directive(trimmed) {
                    Some((name, value)) => {
                        if name.eq_ignore_ascii_case("escape") && value.chars().count() == 1 {
                            escape = value.chars().next().unwrap_or('\\');
                        }
                        continue;
                    }
                    None => directives_allowed = false,
                }
            }
            // Comments, even in the middle of a continued instruction, are dropped.
            continue;
        }
        directives_allowed = false;
        if trimmed.trim().is_empty() {
            // Blank lines neither start an instruction nor end a continuation.
            continue;
        }
        let ends_continued = ends_with_escape(line, escape);
        let content = if ends_continued {
            let kept = line.trim_end_matches([' ', '\t']);
            &kept[..kept.len() - escape.len_utf8()]
        } else {
            line
        };
        if continuing {
            if let Some(last) = out.last_mut() {
                last.args.push(' ');
                last.args.push_str(content.trim());
            }
        } else {
            let content = content.trim_start();
            let (keyword, args) = content.split_once(char::is_whitespace).unwrap_or((content, ""));
            out.push(Instruction {
                line: u32::try_from(index + 1).unwrap_or(u32::MAX),
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_owned(),
            });
        }
        continuing = ends_continued;
        if !continuing && let Some(last) = out.last() {
            heredocs = heredoc_terminators(last);
        }
    }
    out
}

/// 1-based start line of each instruction, in order (see [`instructions`]).
pub fn instruction_lines(text: &str) -> Vec<u32> {
    instructions(text).iter().map(|i| i.line).collect()
}

/// The heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) an instruction opens: only RUN, COPY and ADD take them.
fn heredoc_terminators(instruction: &Instruction) -> Vec<(String, bool)> {
    if !matches!(instruction.keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return Vec::new();
    }
    instruction
        .args
        .split_whitespace()
        .filter_map(|word| {
            let rest = word.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<")?;
            let (strip_tabs, rest) = match rest.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            let name = rest.trim_matches(['"', '\'']);
            (!name.is_empty() && !name.contains('<')).then(|| (name.to_owned(), strip_tabs))
        })
        .collect()
}

/// One build stage: its FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The name after `AS`, lower case as BuildKit keeps it.
    pub name: Option<String>,
    /// The FROM instruction.
    pub from: Instruction,
    /// Everything after FROM, up to the next FROM.
    pub instructions: Vec<Instruction>,
}

/// The stages of a Dockerfile (global ARGs before the first FROM belong to none).
pub fn stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions(text) {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
                _ => None,
            };
            stages.push(Stage { name, from: instruction, instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

/// The instructions BuildKit numbers in its step names: the ones that make a step of their own.
const NUMBERED: [&str; 4] = ["RUN", "COPY", "ADD", "WORKDIR"];

/// The Dockerfile line of a BuildKit step, from its name (`[build 3/5] RUN make`, `[2/2] COPY . /app`).
///
/// BuildKit numbers RUN, COPY, ADD and WORKDIR within a stage, plus FROM when it pulls an image; the
/// stage is named (`AS build`), `stage-N` (the N-th FROM, from 0) or left out when there is only one.
pub fn step_line_of_vertex(text: &str, vertex: &str) -> Option<u32> {
    let rest = vertex.strip_prefix('[')?;
    let (prefix, command) = rest.split_once(']')?;
    let command = command.trim_start();
    let command = command.strip_prefix("ONBUILD ").unwrap_or(command);
    let (keyword, args) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    let mut words: Vec<&str> = prefix.split_whitespace().collect();
    let (index, total) = words.pop()?.split_once('/')?;
    let (index, total): (usize, usize) = (index.parse().ok()?, total.parse().ok()?);
    // A multi-platform build puts the platform first; stage names never contain a slash.
    let stage_name = words.pop().filter(|w| !w.contains('/'));

    let stages = stages(text);
    let stage = match stage_name {
        None if stages.len() == 1 => stages.first()?,
        None => return None,
        Some(name) => match stages.iter().find(|s| s.name.as_deref() == Some(&name.to_ascii_lowercase())) {
            Some(stage) => stage,
            None => stages.get(name.strip_prefix("stage-")?.parse::<usize>().ok()?)?,
        },
    };
    let numbered: Vec<&Instruction> =
        stage.instructions.iter().filter(|i| NUMBERED.contains(&i.keyword.as_str())).collect();
    // One more step than numbered instructions: the FROM pulled an image and is step 1.
    let from_counts = total == numbered.len() + 1;
    let candidate = match (from_counts, index) {
        (true, 1) => Some(&stage.from),
        (true, i) => numbered.get(i.checked_sub(2)?).copied(),
        (false, i) if total == numbered.len() => numbered.get(i.checked_sub(1)?).copied(),
        _ => None,
    };
    match candidate {
        Some(found) if found.keyword.eq_ignore_ascii_case(keyword) => Some(found.line),
        // Numbering that does not fit (e.g. ONBUILD triggers): the step's own text decides.
        _ => {
            let wanted = normalize(args);
            stage
                .instructions
                .iter()
                .find(|i| i.keyword.eq_ignore_ascii_case(keyword) && normalize(&i.args) == wanted)
                .map(|i| i.line)
        }
    }
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A Dockerfile feature the classic builder does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildKitFeature {
    pub line: u32,
    /// What it is, as a user would search for it (`RUN --mount`, `COPY --chmod`, `a heredoc`).
    pub what: String,
    /// What the classic builder does with it.
    pub classic: Classic,
}

/// What the classic builder of Engine 23 and later does with a BuildKit feature, as tried on Docker 26.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classic {
    /// The daemon fails the build with a message of its own (`the --chmod option requires BuildKit`,
    /// `unknown flag: parents`, a COPY heredoc's `no source files were specified`).
    Refuses,
    /// Accepted and ignored, with the same image as a result: why it is the same.
    Ignores(&'static str),
    /// Accepted, and built into a different image without an error: what the classic builder would do.
    Misbuilds(&'static str),
}

impl BuildKitFeature {
    /// True for features the classic builder of Engine 23+ accepts and ignores (the result is the same).
    pub fn ignored_by_classic(&self) -> bool {
        matches!(self.classic, Classic::Ignores(_))
    }

    /// True for an automatic platform ARG (`ARG TARGETARCH`) that the build args give a value: the
    /// classic builder then has one too.
    pub fn given_by(&self, build_args: &[(String, String)]) -> bool {
        self.what.strip_prefix("ARG ").is_some_and(|name| build_args.iter().any(|(k, _)| k == name))
    }
}

/// The ARGs BuildKit sets to the build's platforms; the classic builder leaves them empty.
const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The features in `text` that need BuildKit, in order.
pub fn buildkit_features(text: &str) -> Vec<BuildKitFeature> {
    let mut found = Vec::new();
    if let Some((line, frontend)) = syntax_directive(text) {
        let name = frontend.strip_prefix("docker.io/").unwrap_or(&frontend);
        let dockerfile = ["docker/dockerfile", "docker/dockerfile-upstream"]
            .iter()
            .any(|image| name.strip_prefix(image).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '@'])));
        let classic = if dockerfile {
            Classic::Ignores("it reads the file with its own Dockerfile parser")
        } else {
            Classic::Misbuilds("the classic builder would ignore it and read the file as a plain Dockerfile")
        };
        found.push(BuildKitFeature { line, what: format!("# syntax={frontend}"), classic });
    }
    for instruction in instructions(text) {
        let keyword = instruction.keyword.as_str();
        let line = instruction.line;
        if keyword == "ARG" {
            for word in instruction.args.split_whitespace() {
                if PLATFORM_ARGS.contains(&word) {
                    let classic =
                        Classic::Misbuilds("the classic builder would leave it empty (unless `build-args` sets it)");
                    found.push(BuildKitFeature { line, what: format!("ARG {word}"), classic });
                }
            }
            continue;
        }
        if !matches!(keyword, "RUN" | "COPY" | "ADD") {
            continue;
        }
        // Flags come before the command or the sources; a `--word` after them is the command's own.
        for flag in instruction.args.split_whitespace().map_while(|w| w.strip_prefix("--")) {
            let flag = flag.split('=').next().unwrap_or_default();
            let classic = match (keyword, flag) {
                ("RUN", "mount" | "network" | "security") => Classic::Refuses,
                ("COPY" | "ADD", "link") => Classic::Ignores("the layer is copied as usual"),
                ("ADD", "checksum") => {
                    Classic::Misbuilds("the classic builder would add the source without verifying its checksum")
                }
                ("ADD", "keep-git-dir") => {
                    Classic::Misbuilds("the classic builder would ignore it (it clones no Git repository)")
                }
                ("COPY" | "ADD", "chmod" | "parents" | "exclude" | "checksum" | "keep-git-dir") => Classic::Refuses,
                _ => continue,
            };
            found.push(BuildKitFeature { line, what: format!("{keyword} --{flag}"), classic });
        }
        if !heredoc_terminators(&instruction).is_empty() {
            let classic = if keyword == "RUN" {
                Classic::Misbuilds("the classic builder would run the command without the heredoc's body")
            } else {
                Classic::Refuses
            };
            found.push(BuildKitFeature { line, what: format!("a heredoc in {keyword}"), classic });
        }
    }
    found
}

/// The `# syntax=` parser directive and its line, if the Dockerfile starts with one.
fn syntax_directive(text: &str) -> Option<(u32, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.split('\n').enumerate() {
        let (name, value) = parse_directive(line.trim())?;
        if name.eq_ignore_ascii_case("syntax") {
            return Some((u32::try_from(index + 1).unwrap_or(u32::MAX), value.to_owned()));
        }
    }
    None
}

/// `# name=value` at the top of a Dockerfile.
fn parse_directive(comment: &str) -> Option<(&str, &str)> {
    let body = comment.strip_prefix('#')?.trim();
    let (name, value) = body.split_once('=')?;
    let name = name.trim();
    let valid =
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && name.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| (name, value.trim()))
}

fn ends_with_escape(line: &str, escape: char) -> bool {
    line.trim_end_matches([' ', '\t']).ends_with(escape)
}

/// The line of the `step`-th instruction (1-based), if the Dockerfile has that many.
pub fn step_line(text: &str, step: u32) -> Option<u32> {
    let index = usize::try_from(step.checked_sub(1)?).ok()?;
    instruction_lines(text).get(index).copied()
}

/// Parses "Step 3/7 : RUN …" into 3.
pub fn parse_step(log_line: &str) -> Option<u32> {
    let rest = log_line.trim_start().strip_prefix("Step ")?;
    let (number, rest) = rest.split_once('/')?;
    let total_end = rest.find(|c: char| !c.is_ascii_digit())?;
    if total_end == 0 || !rest[total_end..].trim_start().starts_with(':') {
        return None;
    }
    number.parse().ok()
}

/// The line number in a daemon parse error such as "dockerfile parse error line 5: unknown
/// instruction: FOO" (newer engines say "on line 5").
pub fn parse_error_line(message: &str) -> Option<u32> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("parse error")?;
    let rest = &lower[at..];
    let after = &rest[rest.find("line ")? + "line ".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_instructions_skipping_comments_and_blank_lines() {
        let text =
            "# syntax=docker/dockerfile:1\n\n# a comment\nFROM scratch\n\nCOPY a /a\n  # indented comment\nRUN x\n";
        assert_eq!(instruction_lines(text), vec![4, 6, 8]);
    }

    #[test]
    fn continuation_lines_belong_to_their_instruction() {
        let text = "FROM scratch\nRUN a \\\n    b \\\n# comment inside\n\n    c\nCOPY x /x\n";
        assert_eq!(instruction_lines(text), vec![1, 2, 7]);
        // Trailing blanks after the escape still continue the line.
        assert_eq!(instruction_lines("RUN a \\  \n b\nUSER x\n"), vec![1, 3]);
    }

    #[test]
    fn escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM scratch\nRUN a `\n  b\nRUN c:\\\nUSER x\n";
        assert_eq!(instruction_lines(text), vec![2, 3, 5, 6]);
        // After the first ordinary comment, directives are just comments.
        let late = "# hello\n# escape=`\nFROM scratch\nRUN a `\nUSER x\n";
        assert_eq!(instruction_lines(late), vec![3, 4, 5]);
    }

    #[test]
    fn crlf_and_bom() {
        assert_eq!(instruction_lines("\u{feff}FROM scratch\r\nRUN a \\\r\n b\r\nUSER x\r\n"), vec![1, 2, 4]);
    }

    #[test]
    fn meta_args_count_as_steps() {
        let text = "ARG BASE=scratch\nFROM ${BASE}\nRUN x\n";
        assert_eq!(step_line(text, 1), Some(1));
        assert_eq!(step_line(text, 3), Some(3));
        assert_eq!(step_line(text, 4), None);
        assert_eq!(step_line(text, 0), None);
    }

    #[test]
    fn step_prefix_parsing() {
        assert_eq!(parse_step("Step 3/7 : RUN echo"), Some(3));
        assert_eq!(parse_step("Step 12/12 : CMD x"), Some(12));
        assert_eq!(parse_step("Step x/7 : RUN"), None);
        assert_eq!(parse_step("Stepping 1/2 : x"), None);
        assert_eq!(parse_step("Step 1/ : x"), None);
        assert_eq!(parse_step(" ---> Running in abc"), None);
    }

    #[test]
    fn daemon_parse_error_lines() {
        assert_eq!(parse_error_line("dockerfile parse error line 5: unknown instruction: FOO"), Some(5));
        assert_eq!(parse_error_line("dockerfile parse error on line 12: unknown instruction: X"), Some(12));
        assert_eq!(parse_error_line("failed to reach build target x in Dockerfile"), None);
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let text = "FROM scratch\nCOPY <<EOT /hello.txt\nRUN not an instruction\nEOT\nRUN <<-A cat - <<\"B\"\n\tbody a\n\tA\nbody b\nB\nUSER x\n";
        let found = instructions(text);
        let lines: Vec<(u32, &str)> = found.iter().map(|i| (i.line, i.keyword.as_str())).collect();
        assert_eq!(lines, vec![(1, "FROM"), (2, "COPY"), (5, "RUN"), (10, "USER")]);
        assert_eq!(found[1].args, "<<EOT /hello.txt");
        // `<<` in other instructions is not a heredoc.
        assert_eq!(instruction_lines("FROM scratch\nLABEL a=<<X\nUSER y\n"), vec![1, 2, 3]);
    }

    #[test]
    fn continued_arguments_are_joined() {
        let found = instructions("FROM scratch\nRUN echo a \\\n    && echo b\n");
        assert_eq!(found[1].args, "echo a && echo b");
    }

    #[test]
    fn stages_are_named_or_numbered() {
        let text = "ARG BASE=scratch\nFROM ${BASE} AS Build\nRUN x\nFROM --platform=linux/amd64 scratch\nCOPY --from=build /a /a\n";
        let found = stages(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name.as_deref(), Some("build"));
        assert_eq!(found[0].from.line, 2);
        assert_eq!(found[1].name, None);
        assert_eq!(found[1].instructions.len(), 1);
    }

    #[test]
    fn buildkit_step_names_map_to_lines() {
        // As Docker 26's BuildKit named the steps of this file (only RUN, COPY, ADD and WORKDIR are numbered).
        let text = "ARG BASE=scratch\nFROM ${BASE} AS one\nENV A=1\nWORKDIR /w\nCOPY busybox /bin/busybox\nEXPOSE 80\nRUN echo $A \\\n    && echo multi\nADD busybox /bb2\nCMD [\"true\"]\nFROM one\nRUN echo second\n";
        assert_eq!(step_line_of_vertex(text, "[one 1/4] WORKDIR /w"), Some(4));
        assert_eq!(step_line_of_vertex(text, "[one 2/4] COPY busybox /bin/busybox"), Some(5));
        assert_eq!(step_line_of_vertex(text, "[one 3/4] RUN echo 1     && echo multi"), Some(7));
        assert_eq!(step_line_of_vertex(text, "[one 4/4] ADD busybox /bb2"), Some(9));
        assert_eq!(step_line_of_vertex(text, "[stage-1 1/1] RUN echo second"), Some(12));
        // Padded indexes, a platform prefix, and a FROM that pulled an image (step 1).
        let pulled = "FROM alpine\nRUN a\nRUN b\nRUN c\nRUN d\nRUN e\nRUN f\nRUN g\nRUN h\nRUN i\n";
        assert_eq!(step_line_of_vertex(pulled, "[ 1/10] FROM docker.io/library/alpine:latest"), Some(1));
        assert_eq!(step_line_of_vertex(pulled, "[ 3/10] RUN b"), Some(3));
        assert_eq!(step_line_of_vertex(pulled, "[linux/arm64 10/10] RUN i"), Some(10));
        // A single stage has no name in the step; several stages always do.
        assert_eq!(step_line_of_vertex("FROM scratch\nCOPY a /a\n", "[1/1] COPY a /a"), Some(2));
        assert_eq!(step_line_of_vertex(text, "[1/1] COPY a /a"), None);
        // Numbering that does not fit: matched by the step's text, or not at all.
        assert_eq!(step_line_of_vertex(text, "[one 9/9] ADD busybox /bb2"), Some(9));
        assert_eq!(step_line_of_vertex(text, "[one 9/9] RUN unknown"), None);
        for internal in ["[internal] load build context", "exporting to image", "copy /context /", "[nope 1/1] RUN x"] {
            assert_eq!(step_line_of_vertex(text, internal), None, "{internal}");
        }
    }

    #[test]
    fn buildkit_only_features_are_found() {
        let text = "FROM scratch\nCOPY --chmod=755 a /a\nRUN --mount=type=cache,target=/c x\nCOPY <<EOT /b\nbody\nEOT\nCOPY --link c /c\nRUN --network=none y\nCOPY --from=x a /a\n";
        let found: Vec<(u32, String)> = buildkit_features(text).into_iter().map(|f| (f.line, f.what)).collect();
        assert_eq!(
            found,
            vec![
                (2, "COPY --chmod".to_owned()),
                (3, "RUN --mount".to_owned()),
                (4, "a heredoc in COPY".to_owned()),
                (7, "COPY --link".to_owned()),
                (8, "RUN --network".to_owned()),
            ]
        );
        assert!(buildkit_features("FROM scratch\nCOPY --link a /a\n")[0].ignored_by_classic());
    }

    /// As Docker 26's classic builder (`DOCKER_BUILDKIT=0`) treats each: refused by the daemon, ignored with the
    /// same image, or built into another image without an error.
    #[test]
    fn what_the_classic_builder_does_with_each() {
        let treat = |text: &str| -> Vec<(u32, String, &'static str)> {
            buildkit_features(text)
                .into_iter()
                .map(|f| {
                    let kind = match f.classic {
                        Classic::Refuses => "refuses",
                        Classic::Ignores(_) => "ignores",
                        Classic::Misbuilds(_) => "misbuilds",
                    };
                    (f.line, f.what, kind)
                })
                .collect()
        };
        let text = "# syntax=docker/dockerfile:1.7\nFROM scratch\nRUN <<EOF\necho hello > /hello\nEOF\n\
                    RUN cat <<-EOT > /out\n\tbody\n\tEOT\nADD <<EOF /x\nbody\nEOF\n\
                    ADD --checksum=sha256:00 https://example.com/a /a\nADD --keep-git-dir=true https://example.com/r.git /r\n\
                    COPY --parents a/b /c/\nCOPY --exclude=*.md . /app\nCOPY --checksum=sha256:00 a /a\n\
                    RUN --security=insecure x\nADD --link a /a\n";
        assert_eq!(
            treat(text),
            vec![
                (1, "# syntax=docker/dockerfile:1.7".to_owned(), "ignores"),
                (3, "a heredoc in RUN".to_owned(), "misbuilds"),
                (6, "a heredoc in RUN".to_owned(), "misbuilds"),
                (9, "a heredoc in ADD".to_owned(), "refuses"),
                (12, "ADD --checksum".to_owned(), "misbuilds"),
                (13, "ADD --keep-git-dir".to_owned(), "misbuilds"),
                (14, "COPY --parents".to_owned(), "refuses"),
                (15, "COPY --exclude".to_owned(), "refuses"),
                (16, "COPY --checksum".to_owned(), "refuses"),
                (17, "RUN --security".to_owned(), "refuses"),
                (18, "ADD --link".to_owned(), "ignores"),
            ]
        );
        // Another frontend than the Dockerfile's is a different language: the classic builder reads it as one.
        assert_eq!(
            treat("# escape=`\n# syntax=example.com/frontend:2\nFROM scratch\n"),
            vec![(2, "# syntax=example.com/frontend:2".to_owned(), "misbuilds")]
        );
        for ignored in
            ["docker/dockerfile", "docker.io/docker/dockerfile:1-labs", "docker/dockerfile-upstream@sha256:ab"]
        {
            assert_eq!(treat(&format!("# syntax={ignored}\nFROM scratch\n"))[0].2, "ignores", "{ignored}");
        }
        // Not a directive once an instruction or a comment came first.
        assert!(treat("FROM scratch\n# syntax=example.com/frontend:2\n").is_empty());
        assert!(treat("# hello\n# syntax=example.com/frontend:2\nFROM scratch\n").is_empty());

        // BuildKit's automatic platform ARGs are empty under the classic builder, unless the build args set them.
        let args = "ARG TARGETARCH\nFROM scratch\nARG BUILDPLATFORM TARGETOS=linux\nARG VERSION\n";
        let found = buildkit_features(args);
        assert_eq!(
            treat(args),
            vec![(1, "ARG TARGETARCH".to_owned(), "misbuilds"), (3, "ARG BUILDPLATFORM".to_owned(), "misbuilds")]
        );
        let given = [("TARGETARCH".to_owned(), "amd64".to_owned())];
        assert!(found[0].given_by(&given) && !found[1].given_by(&given));

        // `<<` that opens no heredoc, and flags after the command, are the command's own.
        let plain = "FROM scratch\nRUN echo $((1 << 2)) && echo $((4<<1)) > /x\nRUN pip install --network x --link y\n";
        assert!(treat(plain).is_empty(), "{:?}", treat(plain));
    }
}
