//! Source console script parsing (server.cfg and RCON command lines): commands
//! separated by newlines or `;`, `//` comments, arguments split on whitespace
//! with `"double quoted"` arguments kept whole — the rules of srcds's command
//! buffer.

/// Splits a script into commands, each a list of tokens (name first).
pub fn parse_script(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in text.lines() {
        commands.extend(parse_line(line));
    }
    commands
}

/// Splits one line into commands.
pub fn parse_line(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current = String::new();
    let mut in_token = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A quoted argument runs to the closing quote or the line end.
                let mut quoted = String::new();
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    quoted.push(q);
                }
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
                tokens.push(quoted);
            }
            '/' if chars.peek() == Some(&'/') => break,
            ';' => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
                if !tokens.is_empty() {
                    commands.push(std::mem::take(&mut tokens));
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
            }
            c => {
                current.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(current);
    }
    if !tokens.is_empty() {
        commands.push(tokens);
    }
    commands
}

/// The argument string after the command name, as srcds's `args.ArgS()`
/// gives it (used by `say` and `echo`): the raw rest of the line, with one
/// pair of surrounding quotes removed.
pub fn rest_of_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let rest = match trimmed.find(char::is_whitespace) {
        Some(i) => trimmed[i..].trim(),
        None => "",
    };
    let unquoted = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|r| !r.contains('"'));
    unquoted.unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn quoted_unquoted_and_comments() {
        let cfg = "hostname \"My Server // not a comment\" // a comment\n\
                   rcon_password secret\n\
                   // whole line comment\n\
                   \n\
                   log on; logaddress_add 10.0.0.1:28000\n\
                   sv_logsecret \"12345\"";
        assert_eq!(
            parse_script(cfg),
            vec![
                s(&["hostname", "My Server // not a comment"]),
                s(&["rcon_password", "secret"]),
                s(&["log", "on"]),
                s(&["logaddress_add", "10.0.0.1:28000"]),
                s(&["sv_logsecret", "12345"]),
            ]
        );
    }

    #[test]
    fn empty_quotes_and_unterminated() {
        assert_eq!(
            parse_line("sv_password \"\""),
            vec![s(&["sv_password", ""])]
        );
        assert_eq!(
            parse_line("hostname \"open"),
            vec![s(&["hostname", "open"])]
        );
    }

    #[test]
    fn rest_of_line_for_say() {
        assert_eq!(rest_of_line("say hello  world"), "hello  world");
        assert_eq!(rest_of_line("say \"quoted text\""), "quoted text");
        assert_eq!(rest_of_line("say"), "");
    }
}
