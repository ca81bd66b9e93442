"""Issue 12: stopping a process never frees a model under a thread, and SIGTERM is a
clean stop (exit code 0) for ``lastmile worker``.

The segfault was a background job decoding in llama.cpp while the process exited and
the model was freed under it. ``test_exit_while_a_job_is_inside_the_real_local_model``
reproduces exactly that through ``memory.jobs.JobWorker`` on the real model, with
faulthandler on: a crash prints "Fatal Python error" and a non-zero exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assistant.errors import ProviderUnavailable
from assistant.providers.local import _Gate

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")},
       "PYTHONFAULTHANDLER": "1", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
       "OPENBLAS_NUM_THREADS": "1"}


def test_the_gate_waits_for_the_thread_inside_and_then_refuses_newcomers() -> None:
    gate = _Gate()
    inside, release = threading.Event(), threading.Event()

    def user() -> None:
        with gate.enter("local"):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=user)
    thread.start()
    inside.wait(5)
    assert gate.shut_and_wait(0.2) is False  # still inside: a close must not free now
    release.set()
    thread.join(5)
    assert gate.shut_and_wait(1.0) is True
    with pytest.raises(ProviderUnavailable, match="shut down"), gate.enter("local"):
        pass


SCRIPT = textwrap.dedent('''
    import sys, threading
    from langchain_core.messages import HumanMessage
    from assistant import Settings
    from assistant.providers import ModelRequest
    from assistant.providers.local import LocalModel
    from memory.db import open_engine
    from memory.jobs import JobQueue, JobWorker

    model = LocalModel.from_settings(Settings(local_n_ctx=1024))
    inside = threading.Event()

    def story(job):  # a facts-like job that decodes for a long time
        for chunk in model.request(ModelRequest([HumanMessage("Tell a very long story.")],
                                                max_tokens=900, temperature=0.8)):
            inside.set()

    queue = JobQueue(open_engine(sys.argv[1]))
    worker = JobWorker(queue, {"story": story}, poll_s=0.05)
    queue.enqueue("story", {})
    worker.start()
    assert inside.wait(120), "the job never started decoding"
    print("exiting while the job decodes", flush=True)
    sys.exit(0)  # no close(): the worker thread is still inside llama.cpp
''')


@pytest.mark.slow
def test_exit_while_a_job_is_inside_the_real_local_model(tmp_path: Path) -> None:
    for attempt in range(3):  # three exits at different points of the decode
        result = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path}/j{attempt}.db"],
                                env=ENV, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        out = result.stdout + result.stderr
        assert "exiting while the job decodes" in out, out[-2000:]
        assert result.returncode == 0, out[-3000:]
        assert "Fatal Python error" not in out and "Segmentation fault" not in out, out[-3000:]


@pytest.mark.slow
def test_lastmile_worker_stops_on_sigterm_with_exit_code_0(tmp_path: Path) -> None:
    env = {**ENV, "LASTMILE_DATA_DIR": str(tmp_path / "data"), "LASTMILE_PROVIDERS": "scripted",
           "LASTMILE_SAMPLE_CORPUS": "false"}
    exe = str(Path(sys.executable).parent / "lastmile")
    proc = subprocess.Popen([exe, "worker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        assert proc.stdout is not None
        while "running jobs" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "worker exited before it ran"
            assert time.monotonic() < deadline, "worker did not start"
        assert "facts" in line  # the job kinds it runs, from the same wiring as serve
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "worker stopped" in out and "Traceback" not in out, out
