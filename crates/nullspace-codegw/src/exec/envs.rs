//! Per-execution environment variables: the code each language's kernel runs silently before the user's
//! code (save the old values, set the new ones) and after it (restore), so `envs` are visible to that
//! execution only. Java cannot: a running JVM's environment is fixed, so envs for java are refused.

use std::collections::BTreeMap;

/// The silent code around one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSnippets {
    /// Runs before the user's code.
    pub before: String,
    /// Runs after it, whatever happened.
    pub after: String,
}

/// The snippets setting `envs` in canonical `language` (`None` when there are none), or why not.
pub fn env_snippets(language: &str, envs: &BTreeMap<String, String>) -> Result<Option<EnvSnippets>, String> {
    if envs.is_empty() {
        return Ok(None);
    }
    for (name, value) in envs {
        if !valid_name(name) {
            return Err(format!(
                "invalid env name {name:?}: use letters, digits and underscores, not starting with a digit"
            ));
        }
        if value.contains('\0') {
            return Err(format!("env {name} contains a NUL byte"));
        }
    }
    let json = serde_json::to_string(envs).map_err(|error| error.to_string())?;
    let snippets = match language {
        "python" => EnvSnippets {
            before: format!("__import__('_nullspace_gateway').env_push({json})"),
            after: "__import__('_nullspace_gateway').env_pop()".into(),
        },
        "javascript" => EnvSnippets {
            before: format!(
                "(() => {{ const g = globalThis, vals = {json}, saved = {{}}; for (const k of Object.keys(vals)) \
                 {{ saved[k] = Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : null; \
                 process.env[k] = vals[k]; }} (g.__nullspaceEnvStack = g.__nullspaceEnvStack || []).push(saved); }})();"
            ),
            after: "(() => { const s = (globalThis.__nullspaceEnvStack || []).pop(); if (s) for (const k of \
                    Object.keys(s)) { if (s[k] === null) delete process.env[k]; else process.env[k] = s[k]; } })();"
                .into(),
        },
        "typescript" => EnvSnippets {
            before: format!(
                "{{ const g: any = globalThis; const vals: any = {json}; const saved: any = {{}}; \
                 for (const k of Object.keys(vals)) {{ saved[k] = k in g.process.env ? g.process.env[k] : null; \
                 g.process.env[k] = vals[k]; }} (g.__nullspaceEnvStack = g.__nullspaceEnvStack || []).push(saved); }}"
            ),
            after:
                "{ const g: any = globalThis; const s: any = (g.__nullspaceEnvStack || []).pop(); if (s) for (const k \
                    of Object.keys(s)) { if (s[k] === null) delete g.process.env[k]; else g.process.env[k] = s[k]; } }"
                    .into(),
        },
        "r" => {
            let pairs: Vec<String> =
                envs.iter().map(|(name, value)| format!("{}={}", r_string(name), r_string(value))).collect();
            EnvSnippets {
                before: format!(
                    "local({{ vals <- c({}); assign('.nullspace_env_saved', Sys.getenv(names(vals), unset = NA, \
                     names = TRUE), envir = globalenv()); do.call(Sys.setenv, as.list(vals)) }})",
                    pairs.join(", ")
                ),
                after:
                    "local({ old <- get0('.nullspace_env_saved', envir = globalenv()); if (!is.null(old)) { for (k in \
                        names(old)) { if (is.na(old[[k]])) Sys.unsetenv(k) else do.call(Sys.setenv, \
                        stats::setNames(list(old[[k]]), k)) }; rm('.nullspace_env_saved', envir = globalenv()) } })"
                        .into(),
            }
        }
        "bash" => {
            let mut before = String::new();
            let mut after = String::new();
            for (name, value) in envs {
                before.push_str(&format!(
                    "if [ -n \"${{{name}+x}}\" ]; then __ns_had_{name}=1; __ns_old_{name}=\"${name}\"; \
                     else __ns_had_{name}=0; fi; export {name}={}\n",
                    shell_quote(value)
                ));
                after.push_str(&format!(
                    "if [ \"$__ns_had_{name}\" = 1 ]; then export {name}=\"$__ns_old_{name}\"; else unset {name}; fi; \
                     unset __ns_had_{name} __ns_old_{name}\n"
                ));
            }
            EnvSnippets { before, after }
        }
        "java" => {
            return Err("envs are not supported for java: a running JVM cannot change its environment; \
                        pass values as code (System.setProperty) instead"
                .into())
        }
        other => return Err(format!("envs are not supported for {other}")),
    };
    Ok(Some(snippets))
}

/// Whether `name` can be set by the snippets (letters, digits, underscores; not starting with a digit).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A double-quoted R string (JSON escapes are R escapes too).
fn r_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_envs_need_no_code() {
        assert_eq!(env_snippets("python", &BTreeMap::new()), Ok(None));
        assert_eq!(env_snippets("java", &BTreeMap::new()), Ok(None));
    }

    #[test]
    fn python_pushes_and_pops_through_the_gateway_module() {
        let snippets = env_snippets("python", &envs(&[("A", "x\"y")])).unwrap().unwrap();
        assert_eq!(snippets.before, r#"__import__('_nullspace_gateway').env_push({"A":"x\"y"})"#);
        assert!(snippets.after.contains("env_pop"));
    }

    #[test]
    fn shell_values_are_quoted_and_restored() {
        let snippets = env_snippets("bash", &envs(&[("K", "it's")])).unwrap().unwrap();
        assert!(snippets.before.contains(r#"export K='it'\''s'"#), "{}", snippets.before);
        assert!(snippets.after.contains("unset K"));
    }

    #[test]
    fn r_and_javascript_get_literal_values() {
        let r = env_snippets("r", &envs(&[("K", "a\nb")])).unwrap().unwrap();
        assert!(r.before.contains(r#"c("K"="a\nb")"#), "{}", r.before);
        let js = env_snippets("javascript", &envs(&[("K", "v")])).unwrap().unwrap();
        assert!(js.before.contains(r#"vals = {"K":"v"}"#), "{}", js.before);
        let ts = env_snippets("typescript", &envs(&[("K", "v")])).unwrap().unwrap();
        assert!(ts.before.contains("const vals: any"));
    }

    #[test]
    fn bad_names_and_java_are_refused_with_the_reason() {
        assert!(env_snippets("python", &envs(&[("1A", "v")])).unwrap_err().contains("invalid env name"));
        assert!(env_snippets("bash", &envs(&[("A;rm", "v")])).is_err());
        assert!(env_snippets("java", &envs(&[("A", "v")])).unwrap_err().contains("not supported for java"));
    }
}
