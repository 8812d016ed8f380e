//! Running code: per-execution envs ([`envs`]), kernel outputs in the API's shapes ([`outputs`]), one
//! execution's event loop ([`execution`]) and the code each language's kernel runs silently at start.

pub mod envs;
pub mod execution;
pub mod outputs;
pub mod sandbox_envs;

/// The gateway's python helper module (charts, envs), loaded into every python kernel at start.
const PYTHON_HELPER: &str = include_str!("gateway_kernel.py");

/// The code canonical `language`'s kernel runs silently once started.
pub fn startup_code(language: &str) -> Option<String> {
    match language {
        "python" => {
            let source = serde_json::Value::String(PYTHON_HELPER.to_owned()).to_string();
            Some(format!(
                "def __nullspace_boot(source):\n    import sys, types\n    module = types.ModuleType('_nullspace_gateway')\n    \
                 exec(compile(source, '<nullspace-gateway>', 'exec'), module.__dict__)\n    \
                 sys.modules['_nullspace_gateway'] = module\n    module.install()\n\
                 __nullspace_boot({source})\ndel __nullspace_boot\n"
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_python_gets_startup_code_and_it_embeds_the_helper() {
        let code = super::startup_code("python").unwrap();
        assert!(code.contains("_nullspace_gateway") && code.contains("application/vnd.nullspace.chart+json"));
        assert!(code.ends_with("del __nullspace_boot\n"));
        assert!(super::startup_code("bash").is_none());
    }
}
