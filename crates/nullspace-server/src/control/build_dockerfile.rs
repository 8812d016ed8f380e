//! Dockerfiles on the template engine: the front end's validated stages (`nullspace_node::images::dockerfile`)
//! turned into the engine's operations. The plan made before the build substitutes against an empty base
//! environment (for validate, plan and the step count); the engine re-plans each stage against the
//! environment its base really has (`ENV PATH=/opt/bin:$PATH` must see the image's PATH).

use std::collections::BTreeMap;

use nullspace_node::images::dockerfile::{self, BaseConfig, Dockerfile, InstructionKind, StageBase};

use super::build_plan::{self, Base, BuildPlan, Command, Copy, CopyFrom, Meta, Op, PlanError, PlanErrors, Stage};

/// Plans a Dockerfile with `build_args` (the request's `build_envs`).
pub fn plan(text: &str, build_args: &BTreeMap<String, String>) -> Result<BuildPlan, PlanErrors> {
    let parsed = dockerfile::parse(text, build_args).map_err(errors)?;
    let needed = parsed.needed_stages();
    let stages = parsed.stages.iter().map(convert).collect();
    Ok(BuildPlan {
        stages,
        source_type: "dockerfile",
        warnings: parsed.warnings.clone(),
        needed: (0..parsed.stages.len()).map(|index| needed.contains(&index)).collect(),
        dockerfile: Some(parsed),
    })
}

/// Stage `index` of `parsed` planned against the environment and working directory it starts from.
pub fn resolve(
    parsed: &Dockerfile,
    index: usize,
    env: &BTreeMap<String, String>,
    workdir: Option<&str>,
) -> Result<Stage, PlanErrors> {
    let base = BaseConfig {
        env: env.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
        workdir: workdir.filter(|w| w.starts_with('/')).unwrap_or("/").to_owned(),
    };
    parsed.resolve_stage(index, &base).map(|stage| convert(&stage)).map_err(errors)
}

fn errors(errors: dockerfile::DockerfileErrors) -> PlanErrors {
    PlanErrors(errors.0.iter().map(|e| PlanError { code: "dockerfile_invalid", message: e.to_string() }).collect())
}

fn command(command: &dockerfile::Command) -> Command {
    match command {
        dockerfile::Command::Shell(script) => Command::Shell(script.clone()),
        dockerfile::Command::Exec(argv) => Command::Exec(argv.clone()),
    }
}

fn convert(stage: &dockerfile::Stage) -> Stage {
    let base = match &stage.base {
        StageBase::Image(reference) => Base::Image(reference.clone()),
        StageBase::Stage(index) => Base::Stage(*index),
        StageBase::Scratch => Base::Scratch,
    };
    let mut shell: Option<Vec<String>> = None;
    let mut ops = Vec::new();
    for instruction in &stage.instructions {
        let line = instruction.line;
        let op = match &instruction.kind {
            InstructionKind::Run { command: run, build_args } => {
                let display = format!("RUN {}", display_command(run));
                let command = match (run, &shell) {
                    (dockerfile::Command::Shell(_), Some(shell)) => Command::Exec(run.argv(shell)),
                    _ => command(run),
                };
                Op::Run { command, user: None, display: format!("line {line}: {display}"), envs: build_args.clone() }
            }
            InstructionKind::Copy { from, sources, dst, chown, chmod, add, extract_archives } => {
                let from = match from {
                    dockerfile::CopyFrom::Context => CopyFrom::Context,
                    dockerfile::CopyFrom::Stage(index) => CopyFrom::Stage(*index),
                };
                let keyword = if *add { "ADD" } else { "COPY" };
                Op::Copy {
                    from,
                    items: vec![Copy {
                        sources: sources.clone(),
                        dst: dst.clone(),
                        owner: chown.clone(),
                        mode: chmod.clone(),
                        extract_archives: *extract_archives,
                    }],
                    force_upload: false,
                    display: format!("line {line}: {keyword} {} {dst}", sources.join(" ")),
                }
            }
            InstructionKind::Env(pairs) => Op::Env(pairs.clone()),
            InstructionKind::Workdir(path) => Op::Workdir(path.clone()),
            InstructionKind::User(user) => Op::User(user.clone()),
            InstructionKind::Label(labels) => Op::Meta(Meta::Labels(labels.clone())),
            InstructionKind::Expose(ports) => Op::Meta(Meta::Expose(ports.clone())),
            InstructionKind::Cmd(cmd) => Op::Meta(Meta::Cmd(command(cmd))),
            InstructionKind::Entrypoint(entrypoint) => Op::Meta(Meta::Entrypoint(command(entrypoint))),
            InstructionKind::Healthcheck(check) => {
                Op::Meta(Meta::Healthcheck(check.as_ref().map(|h| build_plan::Healthcheck {
                    test: h.test.clone(),
                    interval_ns: h.interval_ns,
                    timeout_ns: h.timeout_ns,
                    start_period_ns: h.start_period_ns,
                    retries: h.retries,
                })))
            }
            InstructionKind::Volume(paths) => Op::Meta(Meta::Volumes(paths.clone())),
            InstructionKind::Shell(words) => {
                shell = Some(words.clone());
                continue;
            }
            InstructionKind::StopSignal(_) => continue,
        };
        ops.push(op);
    }
    Stage { name: stage.name.clone(), base, ops }
}

fn display_command(command: &dockerfile::Command) -> String {
    match command {
        dockerfile::Command::Shell(script) => script.clone(),
        dockerfile::Command::Exec(argv) => serde_json::to_string(argv).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_stage_dockerfile_becomes_stages_of_operations() {
        let text = "FROM debian:stable-slim AS build\nWORKDIR /src\nRUN echo built > out.txt\n\
                    FROM nullspace/base\nENV APP=/app\nCOPY --from=build /src/out.txt $APP/\nCOPY app.txt /opt/\n\
                    EXPOSE 8080\nHEALTHCHECK --interval=2s CMD test -f /opt/app.txt\nCMD [\"sleep\", \"infinity\"]\n";
        let plan = plan(text, &BTreeMap::new()).unwrap();
        assert_eq!(plan.source_type, "dockerfile");
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.stages[0].base, Base::Image("debian:stable-slim".into()));
        assert_eq!(plan.stages[1].base, Base::Image("nullspace/base".into()));
        let ops = &plan.stages[1].ops;
        assert!(matches!(&ops[1], Op::Copy { from: CopyFrom::Stage(0), items, .. } if items[0].dst == "/app/"));
        assert!(matches!(&ops[2], Op::Copy { from: CopyFrom::Context, items, .. } if items[0].sources == ["app.txt"]));
        assert!(matches!(&ops[4], Op::Meta(Meta::Healthcheck(Some(h))) if h.interval_ns == Some(2_000_000_000)));
        assert_eq!(plan.needed, vec![true, true]);
        assert_eq!(plan.layer_ops(), 4, "WORKDIR, RUN and two COPYs write layers");
    }

    #[test]
    fn stages_resolve_against_their_base_environment() {
        let plan = plan("FROM debian\nENV PATH=/opt/bin:$PATH\n", &BTreeMap::new()).unwrap();
        let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        let stage = resolve(plan.dockerfile.as_ref().unwrap(), 0, &env, None).unwrap();
        assert_eq!(stage.ops[0], Op::Env(vec![("PATH".into(), "/opt/bin:/usr/bin:/bin".into())]));
    }

    #[test]
    fn what_the_engine_cannot_do_is_refused_with_the_line() {
        let errors = plan("FROM debian\nADD https://example.com/x.tgz /x\n", &BTreeMap::new()).unwrap_err();
        assert!(errors.to_string().contains("line 2"), "{errors}");
    }

    #[test]
    fn a_custom_shell_runs_shell_form_commands() {
        let plan = plan("FROM debian\nSHELL [\"/bin/bash\", \"-lc\"]\nRUN echo hi\n", &BTreeMap::new()).unwrap();
        let Op::Run { command, .. } = &plan.stages[0].ops[0] else { panic!("not a run") };
        assert_eq!(command, &Command::Exec(vec!["/bin/bash".into(), "-lc".into(), "echo hi".into()]));
    }
}
