//! Docker's word rules for the instructions it substitutes: splitting an argument string into
//! words (quotes and escapes kept, as BuildKit's `parseWords`), and processing one word (quote
//! removal, escapes, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`, as BuildKit's shell lexer).

/// Splits `text` into words on unquoted whitespace. Quotes and escape characters stay in the
/// words (they are removed by [`expand`]); an escape at the very end is dropped.
pub(super) fn split_words(text: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match quote {
            None if ch.is_whitespace() => {
                if in_word && (blank_ok || !word.is_empty()) {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
                blank_ok = false;
            }
            None => {
                in_word = true;
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        break;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        break;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Why a word could not be processed (the caller adds the line and instruction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExpandError {
    /// Bad syntax: unterminated quote, bad `${...}`.
    Invalid(String),
    /// `${VAR:?message}` (or `${VAR?message}`) met an unset variable.
    Unset(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Invalid(m) | ExpandError::Unset(m) => f.write_str(m),
        }
    }
}

/// Processes one word: removes quotes and escapes and substitutes variables. `lookup` returns
/// `None` for an unset variable (it expands to nothing).
pub(super) fn expand(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut lexer = Lexer { chars: word.chars().collect(), pos: 0, escape, lookup, unset: None };
    let (value, _) = lexer.until(None).map_err(ExpandError::Invalid)?;
    match lexer.unset.take() {
        Some(message) => Err(ExpandError::Unset(message)),
        None => Ok(value),
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// The first `${VAR:?}` that failed (processing goes on to find syntax errors).
    unset: Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        self.pos += usize::from(ch.is_some());
        ch
    }

    /// Reads up to `stop` (consumed) or the end; returns the text and whether `stop` was found.
    fn until(&mut self, stop: Option<char>) -> Result<(String, bool), String> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((out, true));
            }
            match ch {
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    self.next();
                    if let Some(escaped) = self.next() {
                        out.push(escaped);
                    }
                }
                c => {
                    self.next();
                    out.push(c);
                }
            }
        }
        Ok((out, false))
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("unexpected end of text while looking for the matching `'`".into()),
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("unexpected end of text while looking for the matching `\"`".into()),
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                self.next();
                name.push(c);
            }
            return name;
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            self.next();
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.next();
        let name = self.name();
        let op = self.next();
        if name.is_empty() {
            return Err("bad substitution: `${}` needs a variable name".into());
        }
        let value = (self.lookup)(&name);
        let (colon, op) = match op {
            None => return Err(format!("bad substitution: missing `}}` after `${{{name}`")),
            Some('}') => return Ok(value.unwrap_or_default()),
            Some(':') => (true, self.next()),
            other => (false, other),
        };
        let op = match op {
            Some(op @ ('-' | '+' | '?')) => op,
            Some(op @ ('#' | '%' | '/')) => return Err(format!("unsupported substitution `${{{name}{op}...}}`")),
            _ => return Err(format!("bad substitution in `${{{name}...}}`")),
        };
        let (word, found) = self.until(Some('}'))?;
        if !found {
            return Err(format!("bad substitution: missing `}}` after `${{{name}`"));
        }
        // With a colon, an empty value counts as unset.
        let set = value.as_ref().is_some_and(|v| !colon || !v.is_empty());
        Ok(match op {
            '-' if set => value.unwrap_or_default(),
            '-' => word,
            '+' if set => word,
            '+' => String::new(),
            _ if set => value.unwrap_or_default(),
            _ => {
                let message = if word.is_empty() { format!("{name}: is not set") } else { format!("{name}: {word}") };
                self.unset.get_or_insert(message);
                String::new()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("two words".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> Result<String, String> {
        expand(word, '\\', &vars).map_err(|e| e.to_string())
    }

    #[test]
    fn words_split_on_unquoted_whitespace_keeping_quotes() {
        assert_eq!(split_words(r#"A=1 B="x y" C='p q'  D=a\ b"#, '\\'), ["A=1", r#"B="x y""#, "C='p q'", r"D=a\ b"]);
        assert_eq!(split_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(split_words(r#"X="" Y=1"#, '\\'), [r#"X="""#, "Y=1"]);
        assert_eq!(split_words("a` b c", '`'), ["a` b", "c"]);
    }

    #[test]
    fn expand_follows_docker_rules() {
        assert_eq!(ex("$A/${A}/x$A-").unwrap(), "alpha/alpha/xalpha-");
        assert_eq!(ex("$UNSET|${UNSET}|").unwrap(), "||");
        assert_eq!(ex("${UNSET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|${A:-d}").unwrap(), "d|d||d|alpha");
        assert_eq!(ex("${A:+alt}|${EMPTY:+alt}|${EMPTY+alt}|${UNSET+alt}").unwrap(), "alt||alt|");
        assert_eq!(ex(r#"\$A|'$A'|"$A"|"\$A"|a\ b"#).unwrap(), r#"$A|$A|alpha|$A|a b"#);
        assert_eq!(ex(r#""say \"hi\" \n""#).unwrap(), r#"say "hi" \n"#);
        assert_eq!(ex("${UNSET:-${A}-x}").unwrap(), "alpha-x");
        assert_eq!(ex("${UNSET:-\"a b\"}").unwrap(), "a b");
        assert_eq!(ex("$SP").unwrap(), "two words");
        assert_eq!(ex("100$ $").unwrap(), "100$ $");
        assert_eq!(ex("$1x").unwrap(), "x");
        assert_eq!(expand("`$A", '`', &vars).unwrap(), "$A");
    }

    #[test]
    fn expand_errors_are_messages() {
        assert!(ex("${A").unwrap_err().contains("missing `}`"));
        assert!(ex("${UNSET:-x").unwrap_err().contains("missing `}`"));
        assert!(ex("${}").unwrap_err().contains("variable name"));
        assert!(ex("${A#pre}").unwrap_err().contains("unsupported"));
        assert_eq!(ex("${UNSET:?must be set}").unwrap_err(), "UNSET: must be set");
        assert_eq!(ex("${EMPTY:?}").unwrap_err(), "EMPTY: is not set");
        assert_eq!(ex("${EMPTY?}").unwrap(), "");
        assert!(ex("'open").unwrap_err().contains("`'`"));
        assert!(ex("\"open").unwrap_err().contains("`\"`"));
    }
}
