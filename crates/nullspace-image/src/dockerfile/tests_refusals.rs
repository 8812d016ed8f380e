//! What the front end refuses, each with its line and instruction; all problems at once.

use std::collections::BTreeMap;

use super::*;

fn errors(text: &str) -> Vec<DockerfileError> {
    match parse(text, &BTreeMap::new()) {
        Ok(d) => panic!("accepted: {:?}", d.stages),
        Err(DockerfileErrors(errors)) => {
            assert!(!errors.is_empty());
            errors
        }
    }
}

/// The only error of `text`: its line, instruction and message (checked to contain `needle`).
fn refused(text: &str, line: usize, instruction: &str, needle: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!((e.line, e.instruction.as_str()), (line, instruction), "{e:?}");
    assert!(e.message.contains(needle), "{:?} does not contain {needle:?}", e.message);
}

#[test]
fn add_from_a_url_says_to_download_in_run() {
    refused("FROM x\nWORKDIR /a\nADD https://example.com/tool.tgz /opt/\n", 3, "ADD", "RUN curl");
    refused("FROM x\nADD git@github.com:o/r.git /src\n", 2, "ADD", "RUN git clone git@github.com:o/r.git");
    refused("FROM x\nADD https://github.com/o/r.git /src\n", 2, "ADD", "RUN git clone");
    refused("FROM x\nCOPY http://example.com/a /a\n", 2, "COPY", "COPY from http://example.com/a is not supported");
    refused("FROM x\nADD --checksum=sha256:00 a /b\n", 2, "ADD", "--checksum");
}

#[test]
fn run_mount_network_and_security_flags() {
    refused("FROM x\nRUN --mount=type=cache,target=/root/.cache pip install x\n", 2, "RUN", "--mount");
    refused("FROM x\nRUN --mount=type=secret,id=npmrc npm ci\n", 2, "RUN", "--mount=type=secret is not supported yet");
    refused("FROM x\n\nRUN --network=host curl x\n", 3, "RUN", "--network");
    refused("FROM x\nRUN --security=insecure id\n", 2, "RUN", "--security");
    refused("FROM x\nRUN --frobnicate=1 id\n", 2, "RUN", "unknown flag --frobnicate");
    // The default network is what the engine does anyway.
    assert!(parse("FROM x\nRUN --network=default true\n", &BTreeMap::new()).is_ok());
}

#[test]
fn copy_link_parents_exclude_and_bad_flags() {
    refused("FROM x\nCOPY --link a /b\n", 2, "COPY", "--link");
    refused("FROM x\nCOPY --parents a/b /c/\n", 2, "COPY", "--parents");
    refused("FROM x\nCOPY --exclude=*.md . /app/\n", 2, "COPY", "--exclude");
    refused("FROM x\nADD --from=y a /b\n", 2, "ADD", "unknown flag --from");
    refused("FROM x\nCOPY --chmod=u+x a /b\n", 2, "COPY", "octal");
    refused("FROM x\nCOPY --chown a /b\n", 2, "COPY", "--chown needs a value");
}

#[test]
fn copy_from_an_image_or_a_later_stage() {
    refused("FROM x\nCOPY --from=nginx:latest /etc/nginx /etc/nginx\n", 2, "COPY", "FROM nginx:latest AS <name>");
    refused("FROM x AS a\nCOPY --from=1 /a /a\nFROM y AS b\n", 2, "COPY", "--from=1 is not an earlier stage");
    refused("FROM x AS a\nCOPY --from=b /a /a\nFROM y AS b\n", 2, "COPY", "names no earlier stage");
}

#[test]
fn copy_sources_and_destination() {
    refused("FROM x\nCOPY ../secret /s\n", 2, "COPY", "outside the build context");
    refused("FROM x\nCOPY a b /dir\n", 2, "COPY", "ending in /");
}

#[test]
fn onbuild_heredocs_platform_and_unknown_instructions() {
    refused("FROM x\nONBUILD RUN make\n", 2, "ONBUILD", "ONBUILD is not supported");
    refused("FROM x\nCOPY <<EOF /etc/motd\nhello\nEOF\n", 2, "COPY", "COPY/ADD <<EOF is not supported");
    refused("FROM x\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n", 2, "RUN", "#!");
    // Docker allows a heredoc anywhere in RUN; the parser only right after RUN, and says where.
    refused("FROM x\nUSER me\nRUN cat <<EOF > /etc/motd\nhello\nEOF\n", 3, "RUN", "only supported right after RUN");
    refused("FROM --platform=linux/arm64 x\n", 1, "FROM", "only linux/amd64");
    refused("ARG P=linux/arm64\nFROM --platform=$P x\n", 2, "FROM", "--platform=linux/arm64");
    refused("FROM x\nRUN true\nFROBNICATE now\n", 3, "FROBNICATE", "unknown instruction");
}

#[test]
fn no_from_and_empty_files() {
    refused("", 0, "", "empty");
    refused("# just a comment\n\n   \n", 0, "", "empty");
    refused("ARG A=1\n", 0, "", "at least one FROM");
    refused("RUN true\n", 1, "RUN", "expected FROM");
    // An error inside a continued instruction: the line has no keyword to name.
    let e = &errors("FROM x\nHEALTHCHECK --interval=1s \\\n  BOGUS\n")[0];
    assert_eq!((e.line, e.instruction.as_str(), e.message.as_str()), (3, "", "syntax error: expected CMD or NONE"));
}

#[test]
fn bad_values_and_substitutions() {
    refused("FROM scratch\nEXPOSE 80/icmp\n", 2, "EXPOSE", "protocol");
    refused("FROM x\nHEALTHCHECK --interval=5 CMD true\n", 2, "HEALTHCHECK", "invalid duration");
    refused("FROM x\nHEALTHCHECK --retries=-1 CMD true\n", 2, "HEALTHCHECK", "--retries");
    refused("FROM x\nHEALTHCHECK --timeout=10us CMD true\n", 2, "HEALTHCHECK", "at least 1ms");
    refused("FROM x\nHEALTHCHECK --color=red CMD true\n", 2, "HEALTHCHECK", "unknown flag --color");
    refused("FROM x\nENV A=${B\n", 2, "ENV", "missing `}`");
    refused("FROM x\nLABEL a\n", 2, "LABEL", "no value");
    refused("FROM x\nENV A=1 B\n", 2, "ENV", "NAME=value");
    // Without a base image nothing can set A; with one, resolve_stage checks it.
    refused("FROM scratch\nWORKDIR ${A:?}\n", 2, "WORKDIR", "A: is not set");
    refused("ARG IMG\nFROM ${IMG:?required}\n", 2, "FROM", "IMG: required");
    refused("ARG IMG\nFROM $IMG\n", 2, "FROM", "empty after substitution");
    refused("FROM x AS 1st\n", 1, "FROM", "invalid stage name");
    refused("FROM x\nRUN\n", 2, "RUN", "");
    refused("FROM scratch\nSTOPSIGNAL sig-term\n", 2, "STOPSIGNAL", "stop signal");
}

#[test]
fn every_problem_is_reported_in_line_order() {
    let text = "FROM x\nADD https://e.com/f /f\nRUN --mount=type=ssh git clone x\nCOPY --link a /a\nONBUILD RUN x\nEXPOSE 99999\nRUN true\n";
    let errors = errors(text);
    let at: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.instruction.as_str())).collect();
    assert_eq!(at, [(2, "ADD"), (3, "RUN"), (4, "COPY"), (5, "ONBUILD"), (6, "EXPOSE")]);
    let shown = DockerfileErrors(errors).to_string();
    assert!(shown.starts_with("Dockerfile line 2: ADD: ADD from https://e.com/f is not supported"), "{shown}");
    assert_eq!(shown.matches("; Dockerfile line ").count(), 4, "{shown}");
}

#[test]
fn error_display() {
    let e = DockerfileError { line: 3, instruction: "COPY".into(), message: "bad".into() };
    assert_eq!(e.to_string(), "Dockerfile line 3: COPY: bad");
    let whole = DockerfileError { line: 0, instruction: String::new(), message: "the Dockerfile is empty".into() };
    assert_eq!(whole.to_string(), "Dockerfile: the Dockerfile is empty");
}
