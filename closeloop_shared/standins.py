"""Local stand-ins for infrastructure we cannot install here, shared by the local run
(deploy/local.py) and the tests: the MongoDB-wire-protocol server (secantusdb) and an
SMTP sink writing a Maildir (aiosmtpd)."""
import ctypes
import mailbox
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def standin_mongo_uri(port):
    # retryWrites=false: with it on, the stand-in rescans its write history on every write.
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"


def port_open(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout}s")


PR_SET_PDEATHSIG = 1


def die_with_parent(signum=signal.SIGTERM):
    """A preexec_fn: in the child, before exec, have the kernel send `signum` when the
    process that started it dies (no stand-in or service outlives a killed test run)."""
    def arm():
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
        except (OSError, AttributeError):  # not Linux: best effort
            pass
    return arm


def start_mongo_standin(port, storage, log):
    process = subprocess.Popen(
        [str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", str(storage), "--log-level", "WARNING"],
        # its own session: a Ctrl-C to `make run`'s process group must not take the
        # database away before the services it serves have stopped (local.py stops it last)
        # SIGKILL: an orphaned stand-in was seen to ignore SIGTERM and keep a core busy
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL))
    wait_until(lambda: port_open(port) or process.poll() is not None, 60, "MongoDB stand-in")
    if process.poll() is not None:
        raise RuntimeError(f"MongoDB stand-in exited with {process.returncode}")
    return process


def start_smtp_sink(port, maildir, log):
    mailbox.Maildir(maildir, create=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: port_open(port), 30, "SMTP sink")
    return process
