"""A Jupyter kernel for Java backed by the JDK's own REPL, jshell (no packaged Java kernel exists in
Debian, and the usual one, IJava, is not on any registry this platform builds from).

It is a "wrapper kernel" (ipykernel's documented pattern, like bash_kernel): ipykernel speaks the
Jupyter protocol; this class drives one long-lived `jshell` process through a pseudo-terminal
(pexpect). Each cell is written to a file and loaded with `/open`, so multi-line classes and methods
work; what jshell prints is streamed as stdout. A cell whose output reports an exception or a
compile error ends with an error reply (ename = the exception class or `CompilationError`).
Interrupting the kernel (SIGINT) stops the running snippet with jshell's own interrupt, and the
kernel stays usable. State (variables, methods, classes, imports) lives for the kernel's lifetime.
"""

import os
import re
import signal
import tempfile

import pexpect
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

PROMPT = "\x01NSJ>\x02 "
CONTINUATION = "\x01NSJ+\x02 "
EXCEPTION = re.compile(r"^\|\s+Exception (\S+?)(?::\s*(.*))?$", re.M)
COMPILE_ERROR = re.compile(r"^\|\s+Error:\s*$", re.M)


class JavaKernel(Kernel):
    implementation = "nullspace-jshell"
    implementation_version = "1.0"
    language = "java"
    language_version = "17"
    language_info = {"name": "java", "mimetype": "text/x-java", "file_extension": ".jshell"}
    banner = "Java (jshell) kernel"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cells = tempfile.mkdtemp(prefix="jshell-kernel-")
        self._start()

    def _start(self):
        # jshell ignores SIGINT unless it runs a snippet; the kernel process must not die of it either.
        sig = signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            self.jshell = pexpect.spawn(
                "jshell", ["-q", "-J-Xss16m"], echo=False, encoding="utf-8", codec_errors="replace",
                dimensions=(500, 500), env=dict(os.environ, TERM="dumb"),
            )
        finally:
            signal.signal(signal.SIGINT, sig)
        self.jshell.expect(r"jshell> ")
        self.jshell.sendline(f'/set mode nullspace normal -command')
        self.jshell.expect(r"jshell> ")
        self.jshell.sendline(f'/set prompt nullspace "{PROMPT}" "{CONTINUATION}"')
        self.jshell.expect(r"jshell> ")
        self.jshell.sendline("/set feedback nullspace")
        self.jshell.expect_exact(PROMPT)

    def _stream(self, text):
        if text:
            self.send_response(self.iopub_socket, "stream", {"name": "stdout", "text": text})

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
        if not code.strip():
            return self._ok()
        path = os.path.join(self._cells, f"cell-{self.execution_count}.jsh")
        with open(path, "w", encoding="utf-8") as cell:
            cell.write(code if code.endswith("\n") else code + "\n")
        output = []
        interrupted = False
        # jshell's line editor (on a dumb terminal) answers each command line with one space before
        # the command's output: dropped once, so printed text comes out exactly as printed.
        pending_echo = True
        self.jshell.sendline(f"/open {path}")
        while True:
            try:
                index = self.jshell.expect_exact([PROMPT, "\n"], timeout=None)
            except KeyboardInterrupt:
                self.jshell.sendintr()
                interrupted = True
                continue
            except pexpect.EOF:
                output.append(self.jshell.before or "")
                self._stream("".join(output) if not silent else "")
                self._start()
                return self._error("KernelDied", "jshell exited; the kernel restarted it (state is lost)", [])
            line = self.jshell.before + ("\n" if index == 1 else "")
            line = line.replace("\r", "")
            if pending_echo:
                line = line[1:] if line.startswith(" ") else line
                pending_echo = False
            output.append(line)
            if not silent and index == 1:
                self._stream(line)
            if index == 0:
                break
        os.unlink(path)
        text = "".join(output)
        if interrupted:
            return self._error("KeyboardInterrupt", "interrupted", [])
        match = EXCEPTION.search(text)
        if match:
            return self._error(match.group(1), (match.group(2) or "").strip(), text.splitlines())
        if COMPILE_ERROR.search(text):
            return self._error("CompilationError", "the cell does not compile (see the output)", text.splitlines())
        return self._ok()

    def _ok(self):
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    def _error(self, ename, evalue, traceback):
        content = {"ename": ename, "evalue": evalue, "traceback": traceback}
        self.send_response(self.iopub_socket, "error", content)
        return dict(content, status="error", execution_count=self.execution_count)

    def do_shutdown(self, restart):
        try:
            self.jshell.sendline("/exit")
            self.jshell.expect(pexpect.EOF, timeout=5)
        except Exception:
            self.jshell.terminate(force=True)
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=JavaKernel)
