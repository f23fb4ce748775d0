"""scripts/demo, run as a new user would: start it, take every command it
prints, run each one exactly as printed (the consumer in the background, as
"a second terminal"), then stop the demo with Ctrl-C (SIGINT) and check that
it removed what it made.

Each printed command is a line indented by two spaces under a "  # ..."
comment; the commands end at the line that says the log follows. The
consumer is the one whose comment says it streams until Ctrl-C.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from pgcluster import _port_is_free, clean_env, free_port
from walgate import walgate_bin

pytestmark = pytest.mark.walgate_only

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOG_FOLLOWS = "walgate's log follows"


def two_free_ports():
    for _ in range(50):
        port = free_port()
        if _port_is_free(port + 1):
            return port
    raise RuntimeError("no two consecutive free loopback ports")


def read_commands(demo, timeout=180):
    """The demo's output up to the log marker, and the commands in it:
    [(comment, command)]."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            raise AssertionError("the demo ended early:\n" + "".join(lines))
        lines.append(line)
        if LOG_FOLLOWS in line:
            break
    else:
        raise AssertionError("the demo printed no commands in time:\n" + "".join(lines))
    commands, comment = [], None
    for line in lines:
        if line.startswith("  # "):
            comment = line[4:].strip()
        elif line.startswith("  ") and line.strip() and comment is not None:
            commands.append((comment, line.strip()))
            comment = None
    return "".join(lines), commands


def run_printed(command, timeout=60):
    return subprocess.run(["bash", "-c", command], env=clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def demo(walgate_binary):
    port = two_free_ports()
    env = clean_env(WALGATE_BIN=walgate_bin(), WALGATE_DEMO_PORT=port)
    proc = subprocess.Popen([os.path.join(REPO, "scripts", "demo")], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    yield proc
    if proc.poll() is None:     # the test failed early: let the demo clean up
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_demo_commands_work_as_printed(demo):
    output, commands = read_commands(demo)
    assert len(commands) == 4, output
    consumer = [c for comment, c in commands if "until Ctrl-C" in comment]
    assert len(consumer) == 1, output
    workdir = re.search(r"(/tmp/walgate-demo\.\w+)", output).group(1)
    assert os.path.isdir(workdir)
    stream = os.path.join(workdir, "stream.bin")

    background = subprocess.Popen(["bash", "-c", consumer[0]], env=clean_env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # the writer commits a row a second: the stream must carry them
        try:
            wait_for(lambda: os.path.exists(stream) and os.path.getsize(stream) > 200, 60,
                     "the consumer's stream to carry changes")
        except AssertionError:
            if background.poll() is not None:
                raise AssertionError("the consumer ended: " + background.stderr.read() + output)
            raise
        for comment, command in commands:
            if command is consumer[0]:
                continue
            # the stream metrics appear once the consumer has confirmed something
            result = wait_for(lambda c=command: (lambda r: r if r.returncode == 0 else None)(
                run_printed(c)), 40, f"{comment!r} to succeed: {command}")
            assert result.stdout.strip(), (comment, command, result.stderr)
            if "metrics" in command:
                assert re.search(r'walgate_slot_\w*lag\w*\{[^}]*slot="demo"', result.stdout)
            if "--probe /slots" in command:
                assert '"demo"' in result.stdout
            if "psql" in command:
                assert int(result.stdout.split()[-3]) > 0   # "events / ------ / N / (1 row)"
        assert background.poll() is None, background.stderr.read()
    finally:
        if background.poll() is None:
            os.killpg(background.pid, signal.SIGINT)
        background.wait(timeout=20)
    assert background.returncode == 0, background.stderr.read()

    demo.send_signal(signal.SIGINT)
    demo.wait(timeout=60)
    assert demo.returncode == 0
    assert not os.path.exists(workdir)
