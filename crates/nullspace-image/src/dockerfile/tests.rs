//! What the front end accepts: real-world files, substitution, forms, options, directives.

use std::collections::BTreeMap;

use super::*;

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ok(text: &str) -> Dockerfile {
    parse(text, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(stage: &Stage) -> Vec<InstructionKind> {
    stage.instructions.iter().map(|i| i.kind.clone()).collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (s(k), s(v))).collect()
}

fn copy(from: CopyFrom, sources: &[&str], dst: &str) -> InstructionKind {
    InstructionKind::Copy {
        from,
        sources: sources.iter().map(|x| s(x)).collect(),
        dst: s(dst),
        chown: None,
        chmod: None,
        add: false,
        extract_archives: false,
    }
}

fn run(script: &str) -> InstructionKind {
    InstructionKind::Run { command: Command::Shell(s(script)), build_args: vec![] }
}

const PYTHON_APP: &str = r#"# syntax=docker/dockerfile:1
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:$PATH"

WORKDIR /app
RUN python -m venv /opt/venv && \
    # upgrade pip first

    pip install --upgrade pip
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=1000:1000 . .
USER 1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD curl -f http://localhost:8000/health || exit 1
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
"#;

#[test]
fn real_world_python_app_single_stage() {
    let d = ok(PYTHON_APP);
    assert_eq!(d.stages.len(), 1);
    let stage = &d.stages[0];
    assert_eq!((stage.index, stage.name.clone(), stage.line), (0, None, 2));
    assert_eq!(stage.base, StageBase::Image(s("python:3.12-slim")));
    let lines: Vec<usize> = stage.instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, [4, 8, 9, 13, 14, 15, 16, 17, 18, 19]);
    let mut owned = copy(CopyFrom::Context, &["."], "/app/");
    if let InstructionKind::Copy { chown, .. } = &mut owned {
        *chown = Some(s("1000:1000"));
    }
    assert_eq!(
        kinds(stage),
        vec![
            // No base env is known at parse time: $PATH is empty until resolve_stage.
            InstructionKind::Env(pairs(&[
                ("PYTHONDONTWRITEBYTECODE", "1"),
                ("PYTHONUNBUFFERED", "1"),
                ("PATH", "/opt/venv/bin:"),
            ])),
            InstructionKind::Workdir(s("/app")),
            run("python -m venv /opt/venv &&     pip install --upgrade pip"),
            copy(CopyFrom::Context, &["requirements.txt"], "/app/"),
            run("pip install --no-cache-dir -r requirements.txt"),
            owned,
            InstructionKind::User(s("1000")),
            InstructionKind::Expose(vec![s("8000/tcp")]),
            InstructionKind::Healthcheck(Some(Healthcheck {
                test: vec![s("CMD-SHELL"), s("curl -f http://localhost:8000/health || exit 1")],
                interval_ns: Some(30_000_000_000),
                timeout_ns: Some(5_000_000_000),
                start_period_ns: None,
                start_interval_ns: None,
                retries: None,
            })),
            InstructionKind::Cmd(Command::Exec(vec![s("gunicorn"), s("-b"), s("0.0.0.0:8000"), s("app:app")])),
        ]
    );
    assert_eq!(d.needed_stages(), [0]);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("syntax=docker/dockerfile:1"), "{:?}", d.warnings);
}

#[test]
fn resolve_stage_uses_the_base_image_env_and_workdir() {
    let d = ok(PYTHON_APP);
    let base = BaseConfig { env: pairs(&[("PATH", "/usr/local/bin:/usr/bin")]), workdir: s("/srv") };
    let stage = d.resolve_stage(0, &base).unwrap();
    assert_eq!(
        stage.instructions[0].kind,
        InstructionKind::Env(pairs(&[
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("PYTHONUNBUFFERED", "1"),
            ("PATH", "/opt/venv/bin:/usr/local/bin:/usr/bin"),
        ]))
    );
    let after = base.after(&stage.instructions);
    assert_eq!(after.workdir, "/app");
    assert_eq!(after.env.last().unwrap(), &(s("PATH"), s("/opt/venv/bin:/usr/local/bin:/usr/bin")));
    assert_eq!(after.env.len(), 3);

    let relative = ok("FROM x\nWORKDIR data\nCOPY a b\n");
    let stage = relative.resolve_stage(0, &base).unwrap();
    assert_eq!(
        kinds(&stage),
        vec![InstructionKind::Workdir(s("/srv/data")), copy(CopyFrom::Context, &["a"], "/srv/data/b"),]
    );
    assert!(relative.resolve_stage(1, &base).unwrap_err().to_string().contains("no stage 1"));
    let strict = ok("FROM x\nUSER ${NAME:?needs NAME}\nUSER ${NAME:-x}\n");
    assert_eq!(
        strict.warnings,
        [
            "line 2: USER: NAME: needs NAME (unless the base image's environment sets the variables used)",
            "line 2: USER: USER needs a non-empty value (unless the base image's environment sets the variables used)",
        ]
    );
    let err = strict.resolve_stage(0, &BaseConfig::default()).unwrap_err();
    assert_eq!(err.0[0].message, "NAME: needs NAME");
    let with_name = BaseConfig { env: pairs(&[("NAME", "me")]), ..BaseConfig::default() };
    assert_eq!(kinds(&strict.resolve_stage(0, &with_name).unwrap())[0], InstructionKind::User(s("me")));
}

const MULTI_STAGE: &str = r#"ARG GO_VERSION=1.22
FROM golang:${GO_VERSION} AS Builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go build -o /out/app ./cmd/app

FROM debian:stable-slim AS unused
RUN echo never

FROM builder AS test
COPY testdata .

FROM gcr.io/distroless/base AS runtime
COPY --from=builder /out/app /usr/local/bin/app
COPY --from=2 /src/config.yaml /etc/app/
ENTRYPOINT ["/usr/local/bin/app"]
"#;

#[test]
fn multi_stage_builder_and_runtime() {
    let d = ok(MULTI_STAGE);
    let names: Vec<_> = d.stages.iter().map(|s| s.name.clone().unwrap()).collect();
    assert_eq!(names, ["builder", "unused", "test", "runtime"]);
    let bases: Vec<_> = d.stages.iter().map(|s| s.base.clone()).collect();
    assert_eq!(
        bases,
        [
            StageBase::Image(s("golang:1.22")),
            StageBase::Image(s("debian:stable-slim")),
            StageBase::Stage(0),
            StageBase::Image(s("gcr.io/distroless/base")),
        ]
    );
    // A stage FROM an earlier one starts in that stage's WORKDIR.
    assert_eq!(kinds(&d.stages[2]), vec![copy(CopyFrom::Context, &["testdata"], "/src/")]);
    assert_eq!(kinds(&d.stages[0])[1], copy(CopyFrom::Context, &["go.mod", "go.sum"], "/src/"));
    assert_eq!(
        kinds(&d.stages[3]),
        vec![
            copy(CopyFrom::Stage(0), &["/out/app"], "/usr/local/bin/app"),
            copy(CopyFrom::Stage(2), &["/src/config.yaml"], "/etc/app/"),
            InstructionKind::Entrypoint(Command::Exec(vec![s("/usr/local/bin/app")])),
        ]
    );
    assert_eq!(d.needed_stages(), [0, 2, 3]);
    let lines: Vec<_> = d.stages.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 7, 10, 13]);

    let newer = parse(MULTI_STAGE, &args(&[("GO_VERSION", "1.23")])).unwrap();
    assert_eq!(newer.stages[0].base, StageBase::Image(s("golang:1.23")));
    assert!(newer.warnings.is_empty(), "{:?}", newer.warnings);
}

#[test]
fn arg_and_env_substitution() {
    let text = r#"ARG BASE=debian
ARG TAG
FROM ${BASE}:${TAG:-stable-slim}
ARG VERSION=1.0
ARG UNSET_ARG
ARG BASE
ENV APP_VERSION=$VERSION APP_HOME=/opt/app
ENV OLD_STYLE value with  spaces
WORKDIR ${APP_HOME}
WORKDIR sub/../data
LABEL version="${APP_VERSION}" "quoted key"='$literal' empty=${UNSET_ARG:-none} alt=${APP_HOME:+set} base=$BASE
USER ${USER_NAME:-app}
RUN echo $VERSION
COPY files/ ${APP_HOME}/files/
ENV A=1 B=x$A
ENV C=\$A D="$A"
ARG X=from-arg
ENV X=from-env
VOLUME /v/$X
STOPSIGNAL SIG${STOP:-TERM}
"#;
    let d = ok(text);
    let stage = &d.stages[0];
    assert_eq!(stage.base, StageBase::Image(s("debian:stable-slim")));
    assert_eq!(
        kinds(stage),
        vec![
            InstructionKind::Env(pairs(&[("APP_VERSION", "1.0"), ("APP_HOME", "/opt/app")])),
            InstructionKind::Env(pairs(&[("OLD_STYLE", "value with  spaces")])),
            InstructionKind::Workdir(s("/opt/app")),
            InstructionKind::Workdir(s("/opt/app/data")),
            InstructionKind::Label(pairs(&[
                ("version", "1.0"),
                ("quoted key", "$literal"),
                ("empty", "none"),
                ("alt", "set"),
                ("base", "debian"),
            ])),
            InstructionKind::User(s("app")),
            // RUN is not substituted: the ARGs in scope go to its environment.
            InstructionKind::Run {
                command: Command::Shell(s("echo $VERSION")),
                build_args: pairs(&[("BASE", "debian"), ("VERSION", "1.0")]),
            },
            copy(CopyFrom::Context, &["files"], "/opt/app/files/"),
            // Values are substituted with the variables from before the instruction.
            InstructionKind::Env(pairs(&[("A", "1"), ("B", "x")])),
            InstructionKind::Env(pairs(&[("C", "$A"), ("D", "1")])),
            InstructionKind::Env(pairs(&[("X", "from-env")])),
            InstructionKind::Volume(vec![s("/v/from-env")]),
            InstructionKind::StopSignal(s("SIGTERM")),
        ]
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);

    let given = args(&[("VERSION", "2.0"), ("TAG", "bookworm"), ("EXTRA", "1"), ("HTTP_PROXY", "http://p:3128")]);
    let d = parse(text, &given).unwrap();
    assert_eq!(d.stages[0].base, StageBase::Image(s("debian:bookworm")));
    assert_eq!(
        kinds(&d.stages[0])[0],
        InstructionKind::Env(pairs(&[("APP_VERSION", "2.0"), ("APP_HOME", "/opt/app")]))
    );
    assert_eq!(
        kinds(&d.stages[0])[6],
        InstructionKind::Run {
            command: Command::Shell(s("echo $VERSION")),
            build_args: pairs(&[("BASE", "debian"), ("VERSION", "2.0"), ("HTTP_PROXY", "http://p:3128")]),
        }
    );
    assert_eq!(d.warnings, ["build arg EXTRA is not declared by any ARG instruction: it is not used"]);
}

#[test]
fn global_args_need_redeclaring_inside_a_stage_and_platform_args_exist() {
    let d = ok("ARG V=1\nFROM --platform=$BUILDPLATFORM img:$V AS b\nUSER u$V\nARG TARGETARCH\nUSER $TARGETARCH\n");
    assert_eq!(d.stages[0].base, StageBase::Image(s("img:1")));
    assert_eq!(kinds(&d.stages[0]), vec![InstructionKind::User(s("u")), InstructionKind::User(s("amd64"))]);
    let d = ok("FROM --platform=linux/amd64 scratch\nCOPY a /\n");
    assert_eq!(d.stages[0].base, StageBase::Scratch);
    assert_eq!(kinds(&d.stages[0]), vec![copy(CopyFrom::Context, &["a"], "/")]);
}

#[test]
fn exec_and_shell_forms() {
    let d = ok(r#"FROM debian
RUN ["apt-get", "install", "-y", "curl"]
RUN echo "a  b" > /tmp/x
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
CMD python app.py
CMD []
ENTRYPOINT ["/entry.sh", "--flag"]
ENTRYPOINT exec /entry.sh
"#);
    assert_eq!(
        kinds(&d.stages[0]),
        vec![
            InstructionKind::Run {
                command: Command::Exec(vec![s("apt-get"), s("install"), s("-y"), s("curl")]),
                build_args: vec![],
            },
            run("echo \"a  b\" > /tmp/x"),
            InstructionKind::Shell(vec![s("/bin/bash"), s("-o"), s("pipefail"), s("-c")]),
            InstructionKind::Cmd(Command::Shell(s("python app.py"))),
            InstructionKind::Cmd(Command::Exec(vec![])),
            InstructionKind::Entrypoint(Command::Exec(vec![s("/entry.sh"), s("--flag")])),
            InstructionKind::Entrypoint(Command::Shell(s("exec /entry.sh"))),
        ]
    );
    let sh = [s("/bin/sh"), s("-c")];
    assert_eq!(Command::Shell(s("echo hi")).argv(&sh), [s("/bin/sh"), s("-c"), s("echo hi")]);
    assert_eq!(Command::Exec(vec![s("ls")]).argv(&sh), [s("ls")]);
}

#[test]
fn healthcheck_with_options_exec_form_and_none() {
    let d = ok(r#"FROM x
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --start-interval=500ms --retries=3 \
  CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK NONE
HEALTHCHECK CMD pg_isready
"#);
    assert_eq!(
        kinds(&d.stages[0]),
        vec![
            InstructionKind::Healthcheck(Some(Healthcheck {
                test: vec![s("CMD"), s("curl"), s("-f"), s("http://localhost/")],
                interval_ns: Some(90_000_000_000),
                timeout_ns: Some(10_000_000_000),
                start_period_ns: Some(5_000_000_000),
                start_interval_ns: Some(500_000_000),
                retries: Some(3),
            })),
            InstructionKind::Healthcheck(None),
            InstructionKind::Healthcheck(Some(Healthcheck {
                test: vec![s("CMD-SHELL"), s("pg_isready")],
                interval_ns: None,
                timeout_ns: None,
                start_period_ns: None,
                start_interval_ns: None,
                retries: None,
            })),
        ]
    );
}

#[test]
fn expose_with_protocols_ranges_and_variables() {
    let d = ok("FROM x\nARG PORT=9000\nEXPOSE 80 443/tcp 53/UDP 7000-7001/sctp $PORT\n");
    assert_eq!(
        kinds(&d.stages[0]),
        vec![InstructionKind::Expose(
            ["80/tcp", "443/tcp", "53/udp", "7000/sctp", "7001/sctp", "9000/tcp"].map(s).to_vec()
        )]
    );
}

#[test]
fn continuations_comments_blank_lines_and_lowercase_keywords() {
    let text = "\n# leading comment\n  from alpine:3.20 as Base\n\nrun apk add \\\n    # the tools\n    curl \\\n\n    jq\n  # indented comment\nenv A=1 \\\n  B=2\nlabel a=b\n";
    let d = ok(text);
    let stage = &d.stages[0];
    assert_eq!((stage.line, stage.name.as_deref()), (3, Some("base")));
    assert_eq!(stage.instructions.iter().map(|i| i.line).collect::<Vec<_>>(), [5, 11, 13]);
    assert_eq!(
        kinds(stage),
        vec![
            run("apk add     curl     jq"),
            InstructionKind::Env(pairs(&[("A", "1"), ("B", "2")])),
            InstructionKind::Label(pairs(&[("a", "b")])),
        ]
    );
    // CRLF line ends and a byte order mark are accepted.
    let d = ok("\u{feff}FROM x\r\nRUN a \\\r\n  b\r\nUSER me\r\n");
    assert_eq!(kinds(&d.stages[0]), vec![run("a   b"), InstructionKind::User(s("me"))]);
}

#[test]
fn escape_directive_backtick() {
    let text = "# escape=`\nFROM debian\nRUN echo one `\n    two\nENV WIN=C:\\data TICK=a`$b Q=\"x`\"y\"\n";
    let d = ok(text);
    assert_eq!(
        kinds(&d.stages[0]),
        vec![
            run("echo one     two"),
            InstructionKind::Env(pairs(&[("WIN", "C:\\data"), ("TICK", "a$b"), ("Q", "x\"y")])),
        ]
    );
    assert_eq!(d.stages[0].instructions[1].line, 5);
    // The default escape is the backslash, also when written out.
    let d = ok("# escape=\\\nFROM x\nENV A=a\\ b\n");
    assert_eq!(kinds(&d.stages[0]), vec![InstructionKind::Env(pairs(&[("A", "a b")]))]);
}

#[test]
fn copy_and_add_details() {
    let d = ok(r#"FROM x
WORKDIR /app
COPY ["package.json", "package-lock.json", "./"]
COPY --chmod=0755 --chown=node:node bin/start.sh /usr/local/bin/
ADD vendor.tar.gz ./vendor/
COPY ./src/../lib/*.py ..
"#);
    let k = kinds(&d.stages[0]);
    assert_eq!(k[1], copy(CopyFrom::Context, &["package.json", "package-lock.json"], "/app/"));
    assert_eq!(
        k[2],
        InstructionKind::Copy {
            from: CopyFrom::Context,
            sources: vec![s("bin/start.sh")],
            dst: s("/usr/local/bin/"),
            chown: Some(s("node:node")),
            chmod: Some(s("0755")),
            add: false,
            extract_archives: false,
        }
    );
    assert_eq!(
        k[3],
        InstructionKind::Copy {
            from: CopyFrom::Context,
            sources: vec![s("vendor.tar.gz")],
            dst: s("/app/vendor/"),
            chown: None,
            chmod: None,
            add: true,
            extract_archives: true,
        }
    );
    assert_eq!(k[4], copy(CopyFrom::Context, &["lib/*.py"], "/"));
}

#[test]
fn maintainer_becomes_a_label_with_a_warning() {
    let d = ok("FROM x\nMAINTAINER Jane Doe <jane@example.com>\n");
    assert_eq!(
        kinds(&d.stages[0]),
        vec![InstructionKind::Label(pairs(&[("maintainer", "Jane Doe <jane@example.com>")]))]
    );
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].starts_with("line 2: MAINTAINER is deprecated"), "{:?}", d.warnings);
}

#[test]
fn digest_is_sha256_hex_of_the_text() {
    assert_eq!(digest("FROM scratch\n"), "bb57c7da220a8753d7bdabac0d3afdb6efa742e4c736c5bc93ab40dfd5e23b9b");
    assert_ne!(digest("FROM scratch\n"), digest("FROM scratch"));
}

#[test]
fn run_heredocs() {
    let d = ok("FROM x\nRUN <<EOF\nset -e\napt-get update\nEOF\nRUN <<-\"EOT\" bash -e\n\techo \"$HOME\"\n\tEOT\nRUN --network=default <<EOF python3\nprint(1)\nEOF\nUSER me\n");
    assert_eq!(d.stages[0].instructions.iter().map(|i| i.line).collect::<Vec<_>>(), [2, 6, 9, 12]);
    assert_eq!(
        kinds(&d.stages[0]),
        vec![
            // Alone, the document is the script.
            run("set -e\napt-get update\n"),
            // With a command, the shell gets the heredoc as written.
            run("<<-\"EOT\" bash -e\n\techo \"$HOME\"\n\tEOT"),
            run("<<EOF python3\nprint(1)\nEOF"),
            InstructionKind::User(s("me")),
        ]
    );
}

#[test]
fn plan_serializes_for_the_plan_endpoint() {
    let d = ok("FROM debian AS b\nRUN make\nFROM scratch\nCOPY --from=b /a /a\nCOPY x /x\n");
    assert_eq!(d.target().index, 1);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["stages"][0]["base"], serde_json::json!({"image": "debian"}));
    assert_eq!(json["stages"][1]["base"], serde_json::json!("scratch"));
    assert_eq!(
        json["stages"][0]["instructions"][0],
        serde_json::json!({
            "line": 2,
            "kind": {"run": {"command": {"shell": "make"}, "build_args": []}},
        })
    );
    assert_eq!(json["stages"][1]["instructions"][0]["kind"]["copy"]["from"], serde_json::json!({"stage": 0}));
    assert_eq!(json["stages"][1]["instructions"][1]["kind"]["copy"]["from"], serde_json::json!("context"));
    assert_eq!(json.as_object().unwrap().keys().collect::<Vec<_>>(), ["stages", "warnings"]);
}

#[test]
fn never_panics_on_truncated_or_mangled_input() {
    let corpus = [PYTHON_APP, MULTI_STAGE, "# escape=`\nFROM x\nRUN <<-\"E\" sh\n\tx\n\tE\nENV A=`\"${B:-c}`\"\n"];
    let mut checked = 0;
    for text in corpus {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &cut in &boundaries {
            // Every prefix, and the text with one character dropped.
            let _ = parse(&text[..cut], &BTreeMap::new());
            let next = text[cut..].chars().next().map_or(0, char::len_utf8);
            let dropped = format!("{}{}", &text[..cut], &text[cut + next..]);
            if let Ok(d) = parse(&dropped, &args(&[("GO_VERSION", "x y")])) {
                let _ = d.needed_stages();
                let _ = d.resolve_stage(0, &BaseConfig::default());
            }
            checked += 2;
        }
    }
    assert!(checked > 1000, "{checked}");
}
