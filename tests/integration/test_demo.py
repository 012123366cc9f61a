"""`segstream demo` as a newcomer runs it: from a fresh clone with default settings, with a broken
catalog, and stopped by Ctrl-C through a pipe, by SIGTERM and by a closed terminal. Each run
starts its own Kafka and Redis (on free ports), as the demo does, and must leave nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from segstream.stack.process import free_port
from tests.integration.waiting import wait_until
from tests.suite_venv import OFFLINE_PIP_INSTALL, suite_backed_venv

ROOT = Path(__file__).resolve().parents[2]
STARTED = "Feeding the synthetic shop"
ENTER = "→ enter"
STOPPED_ALL = "Stopped: worker, Redis, Kafka."

pytestmark = pytest.mark.integration


def free_kafka_port() -> int:
    """A free port whose successor is free too (the demo's Kafka controller takes port + 1)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def port_env() -> dict[str, str]:
    """The only settings a newcomer's run gets: free ports, so tests do not collide."""
    return {
        "SEGSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_kafka_port()}",
        "SEGSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SEGSTREAM_WEB_PORT": str(free_port()),
    }


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@dataclass
class StackPids:
    """The processes a demo run started: read from its pid files while it runs."""

    stack_dir: Path

    def read(self) -> dict[str, int]:
        files = {
            "kafka": self.stack_dir / "kafka" / "kafka.pid",
            "redis": self.stack_dir / "redis" / "redis.pid",
            "worker": self.stack_dir / "worker.pid",
        }
        found = {}
        for name, path in files.items():
            try:  # a pid file can vanish or be half-written between two looks
                found[name] = int(path.read_text())
            except (FileNotFoundError, ValueError):
                continue
        return found


def assert_nothing_left(pids: dict[str, int]) -> None:
    assert set(pids) == {"kafka", "redis", "worker"}, pids
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    for pid in left.values():  # do not leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after the demo ended: {left}"


def run_to_the_end(
    argv: list[str], cwd: Path, env: dict[str, str], out: Path, stack_dir: Path
) -> tuple[int, dict[str, int]]:
    """Run a demo to its own end (its exit status, and the processes it started), or kill it
    and what it started after a deadline, so that a hung demo does not outlive the test."""
    pids = StackPids(stack_dir)
    seen: dict[str, int] = {}
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ended() -> bool:
        seen.update(pids.read())
        return demo.poll() is not None

    try:
        wait_until(ended, "the demo's end", 400, 0.3, detail=lambda: tail(out))
    except AssertionError:
        kill_all(demo, seen)
        raise
    return demo.returncode, seen


def text_of(output: Path) -> str:
    return output.read_text(errors="replace") if output.exists() else ""


def tail(output: Path) -> str:
    return text_of(output)[-4000:]


def test_the_demo_runs_from_a_fresh_clone_with_default_settings(tmp_path: Path) -> None:
    """`./dev demo --duration` in a clone of HEAD: untracked files of the working tree do not
    help, and the virtualenv is the clone's own (it reuses the suite's packages, offline)."""
    clone = tmp_path / "segstream"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    python = suite_backed_venv(clone / ".venv")
    subprocess.run(
        [python, *OFFLINE_PIP_INSTALL, "--no-deps", "-e", str(clone)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    # ./dev installs the packages unless this stamp says they match pyproject.toml.
    digest = hashlib.sha256((clone / "pyproject.toml").read_bytes()).hexdigest()
    (clone / ".venv" / ".segstream-installed").write_text(digest + "\n")

    out = tmp_path / "demo.out"
    status, seen = run_to_the_end(
        ["./dev", "demo", "--duration", "25"], clone, base_env() | port_env(), out, clone / ".stack"
    )
    text = out.read_text(errors="replace")
    assert status == 0, text
    assert ENTER in text, text
    assert STOPPED_ALL in text, text
    assert (clone / "var" / "worker").is_dir()  # the default data directory, made with parents
    assert_nothing_left(seen)


def demo_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    values = {
        "SEGSTREAM_STACK_DIR": str(tmp_path / "stack"),
        "SEGSTREAM_DATA_DIR": str(tmp_path / "var" / "worker"),
        **{f"SEGSTREAM_{k.upper()}": v for k, v in settings.items()},
    }
    return base_env() | port_env() | values


def test_a_worker_that_exits_ends_the_demo_with_its_last_log_lines(tmp_path: Path) -> None:
    bad = tmp_path / "segments.yaml"
    bad.write_text(
        "segments:\n  vip:\n    description: Two orders\n"
        "    when: {count: {of: orders, within: 3h, min: 2}}\n"
    )
    env = demo_env(tmp_path, segments_file=str(bad))
    out = tmp_path / "demo.out"
    argv = [sys.executable, "-m", "segstream", "demo"]
    status, seen = run_to_the_end(argv, tmp_path, env, out, tmp_path / "stack")
    text = out.read_text(errors="replace")
    assert status == 1, text
    assert "The worker exited" in text, text
    # The validator's one sentence, naming the file, the segment and the field.
    assert "segments.yaml: segment 'vip', field 'when.count.within'" in text, text
    assert "Worker ready" not in text, text
    assert STOPPED_ALL in text or "Stopped: Redis, Kafka." in text, text
    assert {"kafka", "redis"} <= set(seen)
    assert not [pid for pid in seen.values() if alive(pid)]


def running_demo_is_stopped_by(
    tmp_path: Path, start: Callable[[dict[str, str]], subprocess.Popen[bytes]], output: Path
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start a demo, wait until it shows segment changes; return it and its processes."""
    env = demo_env(tmp_path)
    demo = start(env)
    pids = StackPids(tmp_path / "stack")

    def shows_changes() -> bool:
        said = text_of(output)
        return STARTED in said and ENTER in said

    try:
        wait_until(shows_changes, "segment changes", 300, 0.5, detail=lambda: tail(output))
        found = pids.read()
        assert set(found) == {"kafka", "redis", "worker"}, found
    except BaseException:
        kill_all(demo, pids.read())
        raise
    return demo, found


def kill_all(demo: subprocess.Popen[bytes], pids: dict[str, int]) -> None:
    """A failed test leaves no demo, Kafka, Redis or worker running for the rest of the suite."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(demo.pid, signal.SIGKILL)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    demo.wait()


def test_ctrl_c_with_the_output_piped_stops_everything(tmp_path: Path) -> None:
    """`segstream demo | tee log`, then Ctrl-C: the terminal sends SIGINT to the whole job,
    so tee dies too and the demo's stdout becomes a broken pipe."""
    out, err = tmp_path / "tee.log", tmp_path / "stderr.log"
    command = f"{sys.executable} -m segstream demo | tee {out} > /dev/null"

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        with err.open("wb") as errors:
            return subprocess.Popen(
                ["bash", "-c", command],
                env=env,
                stdin=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,  # its own process group: the job a terminal signals
            )

    demo, pids = running_demo_is_stopped_by(tmp_path, start, out)
    os.killpg(demo.pid, signal.SIGINT)
    demo.wait(timeout=150)
    wait_until(
        lambda: not any(alive(pid) for pid in pids.values()),
        "the stop",
        60,
        0.5,
        detail=lambda: tail(err),
    )
    said = out.read_text(errors="replace") + err.read_text(errors="replace")
    assert STOPPED_ALL in said, said
    assert "BrokenPipeError" not in said and "Traceback" not in said, said
    assert_nothing_left(pids)


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        with out.open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "segstream", "demo"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    demo, pids = running_demo_is_stopped_by(tmp_path, start, out)
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=150) == 0, out.read_text()
    text = out.read_text()
    assert "SIGTERM received" in text and STOPPED_ALL in text, text
    assert_nothing_left(pids)


def test_a_closed_terminal_stops_everything(tmp_path: Path) -> None:
    """The demo writes to a terminal that goes away (every write then fails) and gets SIGHUP."""
    out = tmp_path / "terminal.out"
    master, follower = pty.openpty()

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "segstream", "demo"],
            env=env,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )

    def read_terminal() -> None:
        import select

        with out.open("ab") as sink:
            while select.select([master], [], [], 0)[0]:
                try:
                    sink.write(os.read(master, 65536))
                except OSError:
                    return

    os.set_blocking(master, False)
    demo = start(demo_env(tmp_path))
    os.close(follower)
    pids = StackPids(tmp_path / "stack")

    def shows_changes() -> bool:
        read_terminal()
        said = text_of(out)
        return STARTED in said and ENTER in said

    try:
        wait_until(shows_changes, "segment changes", 300, 0.5, detail=lambda: tail(out))
    except BaseException:
        kill_all(demo, pids.read())
        raise
    found = pids.read()
    os.close(master)  # the terminal closes
    os.killpg(demo.pid, signal.SIGHUP)
    assert demo.wait(timeout=150) == 0
    assert_nothing_left(found)
