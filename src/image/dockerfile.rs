//! Just enough of the Dockerfile grammar to point an error at the right line: where each
//! instruction starts, honouring parser directives, comments and line continuations.

/// 1-based start line of each instruction, in order. "Step N/M" in a classic build log is the
/// N-th of these (build-time ARGs before the first FROM count as steps too).
pub fn instruction_lines(text: &str) -> Vec<u32> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let mut directives_allowed = true;
    let mut lines = Vec::new();
    let mut continuing = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
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
        if !continuing {
            lines.push(u32::try_from(index + 1).unwrap_or(u32::MAX));
        }
        continuing = ends_with_escape(line, escape);
    }
    lines
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
}
