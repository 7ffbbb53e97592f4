"""Containing student code while it is graded: the graded notebook's kernel runs in a sandbox.

nbgrader runs the student's code in a Jupyter kernel, a process of its own; the grading process
(nbgrader, which writes the gradebook) is the instructor's. :func:`write_kernel_spec` installs a
kernel ``glyph-sandbox`` whose command first runs this module, which contains the kernel and
then becomes the ordinary Python kernel. What is enforced depends on what the machine allows
(:func:`level`):

``namespaces`` (Linux, run as root with ``unshare``, e.g. a grading server or CI container)
    * new mount, network and PID namespaces: no network at all (not even loopback); the kernel
      and everything it starts die with it;
    * the file system shows only what the notebook needs: the Python installation and the
      student library read-only, the notebook's own folder (a size-limited copy in memory, so a
      full disk is impossible) and the kernel's connection folder; the course folder (gradebook,
      other students, hidden tests' sources), the reference ``solutions/``, the repository and
      the instructor's home are covered by empty folders;
    * a temporary ``HOME`` and ``TMPDIR`` inside that copy (``/tmp`` itself is covered);
    * its own user id (one per kernel), so the process limit below is the kernel's alone;
    * resource limits: address space for data, CPU time, processes/threads, file size.
``limits`` (anything else with ``setrlimit``: a laptop, macOS)
    * the resource limits only (no process limit: it would count the instructor's own
      processes); the file system and the network are not restricted.

The kernel talks to nbgrader over Unix sockets in its connection folder (``ipc`` transport),
which works across the network namespace. The limits are in :class:`Limits`.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

KERNEL_NAME = "glyph-sandbox"
SANDBOX_ENV = "GLYPH_EBM_SANDBOX"      # set in the kernel: how it is contained
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
_FIRST_UID = 61000


def kernel_uid(pid: int) -> int:
    """The user id of the kernel started by the process ``pid`` (as the host sees it): kernels
    that run at the same time get different ids, so one's process limit never binds another."""
    return _FIRST_UID + pid % 30000


@dataclass
class Limits:
    """Resource limits of one grading kernel."""

    data_gib: float = 8.0          # private writable memory (RLIMIT_DATA); the harness lowers it per kernel
    cpu_seconds: int = 900         # CPU time of the whole kernel (RLIMIT_CPU; the per-cell wall-clock limit is nbgrader's)
    processes: int = 128           # processes and threads of the kernel's user (RLIMIT_NPROC; namespaces level only):
                                   # a kernel with torch uses about 30; forking a big kernel is slow, so keep it low
    file_mib: int = 256            # largest file the kernel may write (RLIMIT_FSIZE)
    folder_mib: int = 512          # the notebook folder with HOME and TMPDIR: a memory file system of this size


@dataclass
class SandboxConfig:
    """What one sandbox shows and enforces (written to a JSON file the kernel command names)."""

    hide: list[str]                           # folders whose contents are covered
    read_only: list[str]                      # paths inside them that stay visible, read-only
    writable: list[str] = field(default_factory=list)   # paths that stay visible, writable (the connection folder)
    limits: Limits = field(default_factory=Limits)

    def to_file(self, path: Path) -> Path:
        Path(path).write_text(json.dumps(asdict(self), indent=1))
        return Path(path)

    @classmethod
    def from_file(cls, path) -> "SandboxConfig":
        data = json.loads(Path(path).read_text())
        return cls(hide=data["hide"], read_only=data["read_only"], writable=data.get("writable", []),
                   limits=Limits(**data.get("limits", {})))


def level() -> str:
    """``"namespaces"`` when this machine can contain the kernel fully, else ``"limits"``."""
    if sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("unshare"):
        return "namespaces"
    return "limits"


def write_kernel_spec(folder: Path, config: Path) -> Path:
    """Install the kernel ``glyph-sandbox`` under ``folder/kernels/`` (put ``folder`` on
    ``JUPYTER_PATH``), running this module with ``config`` around the usual Python kernel."""
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "glyph_course.grading.sandbox", str(config), "{connection_file}",
            "--", sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Python 3 (grading sandbox)", "language": "python",
        "interrupt_mode": "message",       # the kernel may sit behind unshare: interrupt by message, not signal
    }, indent=1))
    return spec_dir


# -- inside the sandbox ---------------------------------------------------------------------------
def _mount(source, target, fstype, flags, data=None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    enc = (lambda v: None if v is None else str(v).encode())
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(str(target).encode(), 2) != 0:      # MNT_DETACH
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _tmpfs(target: Path, mib: int, mode: str = "1777") -> None:
    _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={mib}m,mode={mode}")


def confine_files(config: SandboxConfig, cwd: Path, connection: Path, uid: int) -> Path:
    """Cover the hidden folders, keep the listed paths, move the notebook folder into memory.
    Returns the connection file's copy the kernel can read."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    keep = [Path(p).resolve() for p in (*config.read_only, *config.writable) if Path(p).exists()]
    files = {p.name: p.read_bytes() for p in cwd.iterdir() if p.is_file()}
    connection_text = connection.read_bytes()      # it may lie in a folder that is covered next
    hold = Path("/mnt")
    _tmpfs(hold, 1, "755")
    held = []
    for i, path in enumerate(keep):
        (hold / str(i)).mkdir()
        _mount(path, hold / str(i), None, _MS_BIND | _MS_REC)
        held.append((hold / str(i), path))
    hidden = sorted({Path(p).resolve() for p in config.hide}, key=lambda p: len(p.parts))
    for folder in hidden:
        if folder.is_dir() and folder != hold:
            _tmpfs(folder, 1, "755")
    for source, path in held:
        path.mkdir(parents=True, exist_ok=True)
        _mount(source, path, None, _MS_BIND | _MS_REC)
    _umount(hold)                                  # the kept paths stay mounted where they belong
    if hold in hidden:
        _tmpfs(hold, 1, "755")
    cwd.mkdir(parents=True, exist_ok=True)
    _tmpfs(cwd, config.limits.folder_mib)
    os.chdir(cwd)                                 # into the new file system mounted on it
    for name, data in files.items():
        (cwd / name).write_bytes(data)
    for sub in (".home", ".tmp"):
        (cwd / sub).mkdir(mode=0o700)
        os.chown(cwd / sub, uid, uid)
    private = cwd / ".connection.json"           # jupyter writes it readable by its owner only
    private.write_bytes(connection_text)
    os.chown(private, uid, uid)
    tmp = cwd / ".tmp"
    # torch names its compile caches after the user (``/tmp/torchinductor_root`` for root): a
    # folder the instructor's runs may own already. The kernel keeps its own, inside its folder.
    os.environ.update(HOME=str(cwd / ".home"), TMPDIR=str(tmp), USER="student", LOGNAME="student",
                      TORCHINDUCTOR_CACHE_DIR=str(tmp / "torchinductor"), TRITON_CACHE_DIR=str(tmp / "triton"))
    return private


def set_limits(limits: Limits, with_processes: bool) -> None:
    gib = int(limits.data_gib * 2 ** 30)
    wanted = [(resource.RLIMIT_DATA, gib), (resource.RLIMIT_CPU, int(limits.cpu_seconds)),
              (resource.RLIMIT_FSIZE, int(limits.file_mib) * 2 ** 20)]
    if with_processes:
        wanted.append((resource.RLIMIT_NPROC, int(limits.processes)))
    for kind, value in wanted:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # a too large write fails with an error, not a kill


def main(argv=None) -> int:
    """``python -m glyph_course.grading.sandbox CONFIG CONNECTION_FILE [--inside] -- COMMAND...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1:]
    config_path, connection = head[0], Path(head[1])
    config = SandboxConfig.from_file(config_path)
    if level() == "namespaces" and "--inside" not in head:
        inner = [shutil.which("unshare"), "--mount", "--net", "--pid", "--fork", "--kill-child",
                 sys.executable, "-m", "glyph_course.grading.sandbox", config_path, str(connection), "--inside",
                 f"--uid={kernel_uid(os.getpid())}", "--", *command]
        os.execv(inner[0], inner)
    if "--inside" in head:
        uid = int(next(a for a in head if a.startswith("--uid=")).split("=", 1)[1])   # inside, the parent is 0
        private = confine_files(config, Path.cwd(), connection, uid)
        command = [str(private) if part == str(connection) else part for part in command]
        os.environ[SANDBOX_ENV] = "namespaces"      # the checks reap stray processes after each task
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        set_limits(config.limits, with_processes=True)
    else:
        os.environ[SANDBOX_ENV] = "limits"
        set_limits(config.limits, with_processes=False)
    os.execv(command[0], command)
    return 0   # not reached


if __name__ == "__main__":
    sys.exit(main())
