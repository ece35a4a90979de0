"""The sandbox worker: a small stdlib-only program that runs *inside* the jail.

The host starts it (under bubblewrap, or as a plain process) with the system interpreter and
talks to it over its stdin/stdout with length-prefixed JSON frames (4-byte big-endian length,
then UTF-8 JSON). It first answers ``{"ready": true, ...}``; then, for each request, it:

1. makes a fresh working directory (mode 0700, owned by the run's uid; the same path every run,
   so outputs that show it are reproducible) and writes the files;
2. forks a child that starts a new session, moves into the directory, sets its resource limits
   (CPU seconds, address space, processes, file size, open files), drops to the slot's
   unprivileged uid (which also clears every capability) and then runs the code. Python code is
   run in the forked child itself (``main.py`` compiled and executed as ``__main__``), so a run
   costs a fork instead of an interpreter start; bash and compiled C++ are ``exec``-ed;
3. reads stdout/stderr through pipes up to ``output_limit`` bytes each (the rest is drained and
   dropped, ``truncated`` says so), waits on a pidfd until the child exits or the wall-clock
   deadline passes;
4. kills every process the run left behind (``kill(-1)`` from the run's uid, or the whole PID
   namespace under bubblewrap), reaps them (the worker is a child subreaper) and deletes the
   directory, so the next run starts clean.

A fourth argument ``--once`` makes it a one-shot worker (the docker backend's mode): it serves
one request frame from stdin without the ``ready`` greeting and exits.

It never imports turngym: the interpreter that runs it may not see the project's virtualenv.
"""

import base64
import contextlib
import io
import json
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import time
import traceback
import types

try:
    import ctypes
except ImportError:  # a minimal interpreter (e.g. Debian's python3-minimal) may lack it
    ctypes = None

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
OOM_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory", b"out of memory")
CODE_FILES = {"python": "main.py", "bash": "main.sh", "cpp": "main.cpp"}


def read_frame(fd):
    header = read_exact(fd, 4)
    if header is None:
        return None
    body = read_exact(fd, struct.unpack(">I", header)[0])
    return None if body is None else json.loads(body)


def read_exact(fd, size):
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_frame(fd, message):
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


class Worker:
    def __init__(self, run_uid, pid_namespace, base_dir):
        self.root = os.geteuid() == 0
        self.run_uid = run_uid if self.root else os.geteuid()
        self.pid_namespace = pid_namespace
        self.base_dir = base_dir
        self.runs = 0
        self.reaped = {}
        self.libc = None if ctypes is None else ctypes.CDLL(None, use_errno=True)
        self.prctl(PR_SET_CHILD_SUBREAPER)

    def prctl(self, option):
        """Turn on a prctl flag (skipped without ctypes; docker sets no-new-privileges itself)."""
        if self.libc is not None:
            self.libc.prctl(option, 1, 0, 0, 0)

    # ---- one request ----------------------------------------------------------------------
    def handle(self, request):
        self.runs += 1
        workdir = os.path.join(self.base_dir, "run")
        if os.path.lexists(workdir):  # a previous run's leftovers could not be removed
            workdir = os.path.join(self.base_dir, f"run{self.runs}")
        os.makedirs(workdir, mode=0o700)
        try:
            if self.root:
                os.chown(workdir, self.run_uid, self.run_uid)
            self.write_files(workdir, request)
            language = request["language"]
            compile_result = None
            if language == "cpp":
                compile_result = self.execute(
                    ["/usr/bin/g++", "-O2", "-std=c++17", "-o", "main", "main.cpp"],
                    workdir,
                    b"",
                    dict(
                        request,
                        timeout_s=request["compile_timeout_s"],
                        memory_mb=max(1024, request["memory_mb"]),
                    ),
                )
                if compile_result["status"] != "ok":
                    return {"result": compile_result, "compile": compile_result}
                argv = ["./main"]
            elif language == "bash":
                argv = ["/bin/bash", "main.sh"]
            else:
                argv = None
            stdin = request["stdin"].encode("utf-8", "surrogateescape")
            result = self.execute(argv, workdir, stdin, request)
            self.kill_leftovers()
            result["files"] = self.fetch(workdir, request["fetch_files"], request["output_limit"])
            return {"result": result, "compile": compile_result}
        finally:
            self.kill_leftovers()
            shutil.rmtree(workdir, ignore_errors=True)

    def write_files(self, workdir, request):
        files = dict(request["files"])
        files[CODE_FILES[request["language"]]] = base64.b64encode(request["code"].encode()).decode()
        for name, content in files.items():
            path = os.path.join(workdir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(base64.b64decode(content))
        if self.root:
            for directory, dirs, names in os.walk(workdir):
                for name in dirs + names:
                    os.chown(os.path.join(directory, name), self.run_uid, self.run_uid)

    @staticmethod
    def fetch(workdir, names, limit):
        """Base64 of each requested regular file inside ``workdir`` (run over: no race), up to ``limit``."""
        found = {}
        for name in names:
            path = os.path.realpath(os.path.join(workdir, name))
            if not path.startswith(workdir + os.sep):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as handle:
                if not os.path.isfile(path) or os.fstat(fd).st_size > limit:
                    continue
                found[name] = base64.b64encode(handle.read(limit)).decode()
        return found

    # ---- fork, limit, run, supervise --------------------------------------------------------
    def execute(self, argv, workdir, stdin, request):
        stdin_path = os.path.join(workdir, ".stdin")
        with open(stdin_path, "wb") as handle:
            handle.write(stdin)
        stdin_fd = os.open(stdin_path, os.O_RDONLY)
        os.unlink(stdin_path)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self.child(argv, workdir, stdin_fd, out_w, err_w, request)
        for fd in (stdin_fd, out_w, err_w):
            os.close(fd)
        return self.supervise(pid, started, out_r, err_r, request)

    def child(self, argv, workdir, stdin_fd, out_w, err_w, request):
        try:
            os.setsid()
            os.chdir(workdir)
            os.dup2(stdin_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.closerange(3, 65536)
            timeout = float(request["timeout_s"])
            cpu = int(timeout) + 1
            memory = int(request["memory_mb"]) * 1024 * 1024
            limits = [
                (resource.RLIMIT_CPU, (cpu, cpu + 1)),
                (resource.RLIMIT_NPROC, (request["max_processes"],) * 2),
                (resource.RLIMIT_FSIZE, (request["max_file_bytes"],) * 2),
                (resource.RLIMIT_NOFILE, (request["max_open_files"],) * 2),
                (resource.RLIMIT_CORE, (0, 0)),
            ]
            if memory > 0:
                limits.append((resource.RLIMIT_AS, (memory, memory)))
            for kind, value in limits:
                resource.setrlimit(kind, value)
            if self.root:
                os.setgroups([])
                os.setresgid(self.run_uid, self.run_uid, self.run_uid)
                os.setresuid(self.run_uid, self.run_uid, self.run_uid)
            self.prctl(PR_SET_NO_NEW_PRIVS)
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": workdir,
                "TMPDIR": workdir,
                "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            if argv is not None:
                os.execve(argv[0], argv, env)
            os.environ.clear()
            os.environ.update(env)
            run_python(workdir)
        except BaseException as exc:
            os.write(2, (f"sandbox: could not start the program: {exc!r}\n").encode())
            os._exit(126)

    def supervise(self, pid, started, out_r, err_r, request):
        limit = int(request["output_limit"])
        deadline = started + float(request["timeout_s"])
        captured = {out_r: bytearray(), err_r: bytearray()}
        truncated = False
        pidfd = os.pidfd_open(pid)
        selector = selectors.DefaultSelector()
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        timed_out = exited = False
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                if key.fd == pidfd:
                    exited = True
                elif self.drain(key.fd, captured[key.fd], limit, selector):
                    truncated = True
        wall = time.monotonic() - started
        self.kill_leftovers(pid)
        for fd in (out_r, err_r):
            if fd in selector.get_map() and self.drain(fd, captured[fd], limit, selector, until_empty=True):
                truncated = True
        status = self.reaped.pop(pid) if pid in self.reaped else os.waitpid(pid, 0)[1]
        self.reaped.clear()
        selector.close()
        for fd in (out_r, err_r, pidfd):
            os.close(fd)
        stdout, stderr = bytes(captured[out_r]), bytes(captured[err_r])
        return {
            "status": classify(status, timed_out, stderr),
            "exit_code": None if timed_out else os.waitstatus_to_exitcode(status),
            "stdout": stdout.decode("utf-8", "replace"),
            "stderr": stderr.decode("utf-8", "replace"),
            "wall_s": wall,
            "truncated": truncated,
        }

    @staticmethod
    def drain(fd, buffer, limit, selector, until_empty=False):
        """Read what the pipe holds into ``buffer`` (up to ``limit``); True if bytes were dropped."""
        dropped = False
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return dropped
            if not chunk:
                selector.unregister(fd)
                return dropped
            room = limit - len(buffer)
            if len(chunk) > room:
                dropped = True
            buffer.extend(chunk[: max(room, 0)])
            if not until_empty:
                return dropped

    def kill_leftovers(self, group=None):
        """SIGKILL every process the run started, then reap them (orphans included)."""
        if self.pid_namespace:
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        elif self.root:
            self.kill_as_run_uid()
        elif group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.reap()

    def kill_as_run_uid(self):
        """``kill(-1, SIGKILL)`` (three rounds, for processes forked meanwhile) with the run's uid."""
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(self.run_uid, self.run_uid, self.run_uid)
                os.setresuid(self.run_uid, self.run_uid, self.run_uid)
                for _ in range(3):
                    os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

    def reap(self, patience_s=2.0):
        """Wait (up to ``patience_s``) until every child is gone; orphans come here too (subreaper)."""
        give_up = time.monotonic() + patience_s
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                self.reaped[pid] = status
            elif time.monotonic() > give_up:
                return
            else:
                time.sleep(0.0005)


def classify(status, timed_out, stderr):
    if timed_out:
        return "timeout"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return "timeout"
        if sig == signal.SIGKILL:
            return "killed"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return "ok"
    if any(marker in stderr[-4096:] for marker in OOM_MARKERS):
        return "oom"
    return "error"


def run_python(workdir):
    """Run ``main.py`` as ``__main__`` in this (forked) interpreter, like ``python main.py``."""
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.argv = ["main.py"]
    sys.path[0] = workdir
    module = types.ModuleType("__main__")
    module.__file__ = "main.py"  # relative, so tracebacks read the same in every run
    sys.modules["__main__"] = module
    code = 0
    try:
        with open("main.py", "rb") as handle:
            source = handle.read()
        exec(compile(source, module.__file__, "exec", dont_inherit=True), module.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:
        try:  # drop this function's own frame, so the traceback reads like ``python main.py``'s
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:
            os.write(2, b"MemoryError\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 1
    os._exit(code & 0xFF)


def main():
    run_uid, pid_namespace, base_dir = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.makedirs(base_dir, mode=0o711, exist_ok=True)
    worker = Worker(run_uid, pid_namespace, base_dir)
    if len(sys.argv) > 4 and sys.argv[4] == "--once":
        request = read_frame(proto_in)
        if request is not None:
            write_frame(proto_out, serve_one(worker, request))
        return
    write_frame(proto_out, {"ready": True, "uid": worker.run_uid, "root": worker.root, "pid": os.getpid()})
    while True:
        request = read_frame(proto_in)
        if request is None:
            return
        write_frame(proto_out, serve_one(worker, request))


def serve_one(worker, request):
    try:
        return worker.handle(request)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    main()
