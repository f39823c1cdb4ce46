//! The README's commands, run as a reader runs them: one shell, top to bottom, in a directory of
//! their own, against the real binary, and every answer the README prints compared with the real
//! one (snapbox's patterns: `[..]` within a line or a JSON string, `...` for whole lines, `"{...}"`
//! for any JSON value, `"...": "{...}"` for any other keys).
//!
//! The blocks it runs:
//! - ` ```console `: `$ command` (continued by `> ` lines), then the output the README shows.
//!   JSON output is compared as JSON (so it may be wrapped to fit the page), other output line by
//!   line. Every command must exit 0.
//! - ` ```python `: run by `python3` with `clients/python` importable; a ` ```text ` block right
//!   after it is what it prints.
//!
//! A shell block that is not run says why in its info string (` ```sh not-run: reason `); any other
//! shell block fails this test, so a new example cannot slip past it.
//!
//! Why not trycmd: it runs one registered program per `$` line, without a shell, so the README's
//! variables, heredocs, pipes and a server in the background cannot be written there.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use snapbox::data::DataFormat;
use snapbox::{Assert, Data, Redactions};

use crate::support::temp_dir;

/// What one command may take; the slowest is a first start of the server.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The port the README shows; each run takes a free one in its place.
const README_PORT: &str = "8080";

#[test]
fn every_command_in_the_readme_runs_and_prints_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("reading README.md");
    let steps = steps(&readme).unwrap_or_else(|problem| panic!("README.md: {problem}"));
    assert!(
        steps.iter().filter(|step| step.expected.is_some()).count() >= 10,
        "the README shows fewer than ten answers: did the parser lose its blocks?"
    );

    let mut reader = Reader::new(root);
    let mut failures = Vec::new();
    for step in &steps {
        let ran = reader.run(step);
        if let Err(failure) = ran {
            failures.push(format!("README.md:{}: {failure}", step.line));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} README commands differ from what it shows:\n\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

/// One thing the reader runs, with where the README shows it.
#[derive(Debug)]
struct Step {
    line: usize,
    kind: StepKind,
    code: String,
    /// What the README shows it printing; `None` when it shows nothing to compare.
    expected: Option<String>,
}

#[derive(Debug, PartialEq)]
enum StepKind {
    Shell,
    Python,
}

/// A fenced block: its info string, its first line's number and its text.
struct Block<'a> {
    info: &'a str,
    line: usize,
    /// How far its fence is indented (a block in a list item).
    indent: usize,
    lines: Vec<&'a str>,
}

fn blocks(markdown: &str) -> Result<Vec<Block<'_>>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim(),
                    line: index + 2,
                    indent,
                    lines: Vec::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            // A block inside a list item is indented with it.
            (Some(block), None) => {
                let inside = line.get(block.indent..).filter(|_| {
                    line.get(..block.indent)
                        .is_some_and(|pad| pad.trim().is_empty())
                });
                block.lines.push(inside.unwrap_or(line.trim_start()))
            }
            (None, None) => {}
        }
    }
    match open {
        Some(block) => Err(format!("the block at line {} is never closed", block.line)),
        None => Ok(blocks),
    }
}

fn steps(markdown: &str) -> Result<Vec<Step>, String> {
    let blocks = blocks(markdown)?;
    let mut steps = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let language = block.info.split_whitespace().next().unwrap_or("");
        match language {
            "console" => steps.extend(console_steps(block)?),
            "python" => {
                let printed = blocks
                    .get(index + 1)
                    .filter(|next| next.info == "text")
                    .map(|next| next.lines.join("\n"));
                steps.push(Step {
                    line: block.line,
                    kind: StepKind::Python,
                    code: block.lines.join("\n"),
                    expected: printed,
                });
            }
            "sh" | "bash" | "shell" | "shell-session" => {
                let reason = block.info.split_once("not-run:").map(|(_, why)| why.trim());
                if reason.is_none_or(|why| why.split_whitespace().count() < 3) {
                    return Err(format!(
                        "the shell block at line {} is neither run (```console) nor says why not \
                         (```{language} not-run: <reason>)",
                        block.line
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(steps)
}

/// A ```console block: `$ command`, `> continuation`, then its output until the next `$`.
fn console_steps(block: &Block) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut output: Vec<&str> = Vec::new();
    let finish = |steps: &mut Vec<Step>, output: &mut Vec<&str>| {
        if let Some(last) = steps.last_mut() {
            let text = output.join("\n").trim_end().to_string();
            last.expected = (!text.is_empty()).then_some(text);
        }
        output.clear();
    };
    for (offset, line) in block.lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            finish(&mut steps, &mut output);
            steps.push(Step {
                line: block.line + offset,
                kind: StepKind::Shell,
                code: command.to_string(),
                expected: None,
            });
        } else if let (Some(more), true) = (line.strip_prefix("> "), output.is_empty()) {
            let step = steps.last_mut().ok_or_else(|| {
                format!(
                    "line {}: a `> ` line continues no command",
                    block.line + offset
                )
            })?;
            step.code.push('\n');
            step.code.push_str(more);
        } else if steps.is_empty() {
            return Err(format!(
                "line {}: a console block starts with `$ `",
                block.line + offset
            ));
        } else {
            output.push(line);
        }
    }
    finish(&mut steps, &mut output);
    Ok(steps)
}

/// The reader: one bash process in a fresh directory that looks like a clone with the release
/// binary built (`target/release/vector-service`, `examples/`, `clients/`), kept for the whole
/// README so variables and files carry from one block to the next, as in a terminal.
struct Reader {
    shell: Child,
    stdin: ChildStdin,
    dir: PathBuf,
    port: String,
    redactions: Redactions,
    ran: usize,
}

impl Reader {
    fn new(root: &Path) -> Self {
        let dir = temp_dir("readme");
        std::fs::create_dir_all(dir.join("target/release")).unwrap();
        let binary = env!("CARGO_BIN_EXE_vector-service");
        std::os::unix::fs::symlink(binary, dir.join("target/release/vector-service")).unwrap();
        for shared in ["examples", "clients"] {
            std::os::unix::fs::symlink(root.join(shared), dir.join(shared)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let mut shell = Command::new("bash")
            .current_dir(&dir)
            .env_remove("VECTOR_SERVICE_DATA_DIR")
            .env_remove("VECTOR_SERVICE_URL")
            .env_remove("VECTOR_SERVICE_API_KEY")
            .env_remove("RUST_LOG")
            .env("PYTHONPATH", root.join("clients/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a server it left in the background goes with it.
            .process_group(0)
            .spawn()
            .expect("starting bash");
        let stdin = shell.stdin.take().unwrap();
        let mut redactions = Redactions::new();
        redactions
            .insert("[DIGEST]", regex::Regex::new("[0-9a-f]{64}").unwrap())
            .unwrap();
        redactions
            .insert(
                "[UUID]",
                regex::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
                    .unwrap(),
            )
            .unwrap();
        Reader {
            shell,
            stdin,
            dir,
            port,
            redactions,
            ran: 0,
        }
    }

    /// Runs one step in the shell and compares what it printed with what the README shows.
    fn run(&mut self, step: &Step) -> Result<(), String> {
        self.ran += 1;
        let n = self.ran;
        let code = step.code.replace(README_PORT, &self.port);
        let script = match step.kind {
            StepKind::Shell => code,
            StepKind::Python => format!("python3 - <<'README_PYTHON'\n{code}\nREADME_PYTHON"),
        };
        // The step's output goes to a file of its own and its status to another, written last:
        // the status file appearing is the step's end.
        writeln!(
            self.stdin,
            "{{\n{script}\n}} > .step-{n}.out 2>&1 < /dev/null; echo $? > .step-{n}.tmp && mv .step-{n}.tmp .step-{n}.status"
        )
        .and_then(|()| self.stdin.flush())
        .map_err(|error| format!("the shell is gone: {error}"))?;

        let status_file = self.dir.join(format!(".step-{n}.status"));
        let started = Instant::now();
        let status = loop {
            if let Ok(status) = std::fs::read_to_string(&status_file) {
                break status.trim().to_string();
            }
            if started.elapsed() > COMMAND_TIMEOUT {
                return Err(format!(
                    "`{}` still runs after {COMMAND_TIMEOUT:?}",
                    step.code
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let printed = std::fs::read_to_string(self.dir.join(format!(".step-{n}.out")))
            .unwrap_or_default()
            .replace(&self.port, README_PORT);
        if status != "0" {
            return Err(format!(
                "`{}` exited {status}; it printed:\n{printed}",
                step.code
            ));
        }
        match &step.expected {
            Some(expected) => self.compare(step, expected, &printed),
            None if printed.trim().is_empty() => Ok(()),
            None => Err(format!(
                "`{}` printed what the README does not show:\n{printed}",
                step.code
            )),
        }
    }

    fn compare(&self, step: &Step, expected: &str, printed: &str) -> Result<(), String> {
        let as_json = serde_json::from_str::<serde_json::Value>(expected).is_ok();
        let (expected, actual) = if as_json {
            (
                Data::text(expected).is(DataFormat::Json),
                Data::text(printed.trim()).is(DataFormat::Json),
            )
        } else {
            (Data::text(expected), Data::text(printed.trim_end()))
        };
        Assert::new()
            .redact_with(self.redactions.clone())
            .try_eq(Some(&"the real answer"), actual, expected)
            .map_err(|difference| format!("`{}`:\n{difference}", step.code))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // The whole group: the shell and whatever the README started in the background.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.shell.id())])
            .status();
        let _ = self.shell.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_shell_block_that_is_not_run_must_say_why() {
    let unexplained = "text\n```sh\ncurl localhost:8080/healthz\n```\n";
    assert!(steps(unexplained)
        .unwrap_err()
        .contains("neither run (```console) nor says why not"));
    let explained = "```sh not-run: this is CI itself\nbash scripts/test.sh\n```\n";
    assert!(steps(explained).unwrap().is_empty());
}

#[test]
fn a_console_block_splits_into_commands_with_their_output() {
    let block =
        "```console\n$ echo one \\\n> two\none two\n$ true\n$ printf '%s\\n' a b\na\nb\n```\n";
    let steps = steps(block).unwrap();
    let shown: Vec<(&str, Option<&str>)> = steps
        .iter()
        .map(|step| (step.code.as_str(), step.expected.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("echo one \\\ntwo", Some("one two")),
            ("true", None),
            ("printf '%s\\n' a b", Some("a\nb")),
        ]
    );
}
