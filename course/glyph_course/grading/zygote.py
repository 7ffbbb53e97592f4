"""Warm grading kernels: a process that has imported what every grading kernel needs (torch,
Lightning, the check harness, ipykernel) forks a fresh kernel for each notebook.

A grading kernel spends most of its time importing torch and Lightning (about 7 s on the course
machine, more than the checks take). The *zygote* imports them once; for each kernel it forks a
handler, which unshares the namespaces and forks the kernel: the kernel is then contained exactly
as :mod:`.sandbox` does it (its own mount, network and PID namespaces and user id, the same
limits), but starts in a fraction of a second. Every kernel is a fresh copy of the zygote, so
nothing a submission does reaches another.

The kernel spec's command (:func:`write_kernel_spec`) is a small launcher that asks the zygote
for a kernel and waits for it to end; when nbgrader kills the launcher, the handler kills the
kernel (and with it everything in its PID namespace).
"""
from __future__ import annotations

import atexit
import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import sandbox

PRELOAD = ("torch", "pytorch_lightning", "numpy", "sklearn.metrics", "matplotlib", "ipykernel.kernelapp",
           "glyph_ebm.checks.harness", "glyph_ebm.checks.toys", "glyph_ebm.config", "glyph_ebm.plots")
_CLONE_NEWNS, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000


# -- the launcher (the kernel spec's command: tiny, imports nothing heavy) ------------------------
def launch(socket_path: str, config: str, connection: str, kernel_args: list[str]) -> int:
    """Ask the zygote at ``socket_path`` for a kernel; wait for it and return its exit status."""
    request = json.dumps({"config": config, "connection": connection, "args": kernel_args,
                          "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    conn.sendall(struct.pack("!I", len(request)) + request)
    answer = b""
    while len(answer) < 4:
        chunk = conn.recv(4 - len(answer))
        if not chunk:
            return 1
        answer += chunk
    return struct.unpack("!i", answer)[0]


# -- the zygote -----------------------------------------------------------------------------------
def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _recv_request(conn: socket.socket) -> dict:
    head = b""
    while len(head) < 4:
        head += conn.recv(4 - len(head))
    size = struct.unpack("!I", head)[0]
    body = b""
    while len(body) < size:
        body += conn.recv(size - len(body))
    return json.loads(body)


def _run_kernel(request: dict) -> None:
    """In the forked kernel process (PID 1 of its namespace): contain it, then run ipykernel."""
    os.environ.clear()
    os.environ.update(request["env"])
    cwd = Path(request["cwd"])
    os.chdir(cwd)
    config = sandbox.SandboxConfig.from_file(request["config"])
    uid = request["uid"]
    private = sandbox.confine_files(config, cwd, Path(request["connection"]), uid)
    os.environ[sandbox.SANDBOX_ENV] = "namespaces"
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    sandbox.set_limits(config.limits, with_processes=True)
    import tempfile as temp

    temp.tempdir = None                 # the zygote's imports fixed it to /tmp; use the kernel's TMPDIR
    sys.path[0:0] = [""]
    args = [str(private) if a == request["connection"] else a for a in request["args"]]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(args)
    app.start()


def _handle(conn: socket.socket) -> None:
    """A handler (a fork of the zygote): start one contained kernel, wait for it, report."""
    request = _recv_request(conn)
    # a user id of its own (the process limit counts per user): from this handler's pid, which is
    # unique on the machine; inside the new PID namespace every kernel is PID 1 and sees parent 0
    request["uid"] = sandbox.kernel_uid(os.getpid())
    _unshare(_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID)
    kernel = os.fork()
    if kernel == 0:
        conn.close()
        status = 0
        try:
            _run_kernel(request)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:          # noqa: BLE001 - any failure ends the kernel with status 1
            import traceback

            traceback.print_exc()
            status = 1
        os._exit(status)
    while True:
        done, status = os.waitpid(kernel, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        ready, _, _ = select.select([conn], [], [], 0.2)
        if ready and not conn.recv(1):           # the launcher is gone: nbgrader ended the kernel
            os.kill(kernel, signal.SIGKILL)
            os.waitpid(kernel, 0)
            code = -9
            break
    try:
        conn.sendall(struct.pack("!i", code))
    except OSError:
        pass


def serve(socket_path: str) -> None:
    """Import what the kernels need, then fork a handler for every launcher that connects."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)          # handlers are reaped by the kernel of Linux
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(64)
    print("ready", flush=True)
    # From here on nobody reads the pipe the "ready" line went through. The forked kernels inherit
    # stdout and print to it; once 64 KiB had gone unread (about 140 kernels) the next kernel
    # blocked on its first write and nbgrader gave up on it. Their output goes to a log instead.
    log = os.open(os.path.join(os.path.dirname(socket_path), "kernels.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _handle(conn)
            finally:
                os._exit(0)
        conn.close()


# -- one zygote per grading process ---------------------------------------------------------------
_lock = threading.Lock()
_zygote: dict = {}


def available() -> bool:
    """Whether kernels can come from a zygote here (the namespaces level of :mod:`.sandbox`)."""
    return sandbox.level() == "namespaces" and os.environ.get("GLYPH_EBM_NO_ZYGOTE") != "1"


def socket_path() -> str:
    """The socket of this process's zygote, started on first use (it ends with the process)."""
    with _lock:
        if _zygote.get("pid") == os.getpid() and _zygote["proc"].poll() is None:
            return _zygote["socket"]
        folder = tempfile.mkdtemp(prefix="glyph-zygote-")
        path = os.path.join(folder, "zygote.sock")
        proc = subprocess.Popen([sys.executable, "-m", "glyph_course.grading.zygote", "serve", path],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError("the grading zygote did not start")
        _zygote.update(pid=os.getpid(), proc=proc, socket=path)
        atexit.register(_stop, proc)
        return path


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def write_kernel_spec(folder: Path, config: Path, socket_file: str) -> Path:
    """The kernel ``glyph-sandbox`` whose kernels come from the zygote at ``socket_file``."""
    spec_dir = Path(folder) / "kernels" / sandbox.KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "glyph_course.grading.zygote", "launch", socket_file, str(config),
            "{connection_file}", "--", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Python 3 (grading sandbox, warm)", "language": "python",
        "interrupt_mode": "message"}, indent=1))
    return spec_dir


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[0] == "serve":
        serve(argv[1])
        return 0
    split = argv.index("--")
    _, socket_file, config, connection = argv[:split]
    return launch(socket_file, config, connection, argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
