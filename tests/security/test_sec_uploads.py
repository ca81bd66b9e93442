"""Findings 1 and 9: a signed-in user made the Documents tab ingest any server file by
naming its path in a forged ``FileData`` (another user's upload, a system file), and the
per-user upload folders collided (``..`` was the data folder, ``a@b`` and ``a_b`` shared
one). Replayed on the real server: raw ``/gradio_api/queue/join`` calls, as a script
would send them, after a real sign-in."""

from __future__ import annotations

import json
import logging
import os
import sysconfig
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest
from sec_gradio import call, event_index, file_data, upload

from ui.documents_tab import NOT_RECEIVED, keep_upload, received_upload, upload_folder

ALICE_TEXT = "# Payroll\n\nThe payroll vault code is QX-7741-ALICE. Salaries are paid on the 25th.\n"
BOB_TEXT = "# Payroll\n\nBob's payroll note: the vault code is BOB-0000-DECOY.\n"
SYSTEM_FILE = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
SYSTEM_MARK = "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2"


@pytest.fixture
def rig(make_rig: Callable[..., Any]) -> Any:
    """The default rig with an (empty) document corpus, so the Documents tab is on."""
    from memory.corpus import Corpus
    from memory.vectors import open_chroma

    made = make_rig()
    settings = made.settings
    made.bot.documents = Corpus.from_settings(made.bot.store.engine, open_chroma(
        settings.chroma_path, settings.chroma_url), settings)
    return made


def ingest_event(rig: Any, user: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The Documents tab's upload event, as ``user``, for these ``FileData``."""
    client = rig.sign_in(user)
    return call(client, event_index(client, "lm-upload", "upload"), [files])


def legit_upload(rig: Any, user: str, name: str, text: str) -> dict[str, Any]:
    """What the browser does: the bytes to ``/gradio_api/upload``, then the event. Once
    kept in the user's folder, the file is gone from Gradio's shared cache."""
    client = rig.sign_in(user)
    path = upload(client, name, text.encode())
    done = call(client, event_index(client, "lm-upload", "upload"), [[file_data(path, name)]])
    assert not Path(path).exists() or not done["success"]
    return done


def refused(done: dict[str, Any]) -> bool:
    """Refused by Gradio (its upload-folder check; its SSRF guard for a URL: an error),
    or by ours (a ✗ line naming the reason)."""
    if not done["success"]:
        error = str(done["output"].get("error"))
        return "not uploaded by a user" in error or "failed validation" in error
    return NOT_RECEIVED in str(done["output"]["data"][0]) and "✗" in str(done["output"]["data"][0])


def ask(rig: Any, user: str, question: str) -> str:
    """One chat turn over ``/v1`` (the real openai SDK); what the provider was sent."""
    rig.provider.requests.clear()
    rig.api(user).chat.completions.create(model="lastmile", messages=[{"role": "user", "content": question}])
    return rig.provider_bodies()


def own_paths(rig: Any, user: str) -> list[str]:
    return [s.path for s in rig.bot.documents.sources(user) if not s.shared]


def test_a_legit_upload_is_ingested_and_reaches_its_owners_prompt(rig: Any) -> None:
    """The control: the real upload route still works, so the refusals below mean something."""
    done = legit_upload(rig, "alice", "payroll.md", ALICE_TEXT)
    assert done["success"], done
    kept = upload_folder(rig.settings.data_dir, "alice") / "payroll.md"
    assert own_paths(rig, "alice") == [str(kept)]
    assert kept.read_text() == ALICE_TEXT
    assert "QX-7741-ALICE" in ask(rig, "alice", "What is the payroll vault code?")


@pytest.mark.parametrize("target", ["own folder", "alice's upload", "system file", "url", "cache dir",
                                    "traversal"])
def test_a_forged_path_is_refused_and_nothing_is_ingested(rig: Any, target: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lastmile.audit")
    assert legit_upload(rig, "alice", "payroll.md", ALICE_TEXT)["success"]
    alices = upload_folder(rig.settings.data_dir, "alice") / "payroll.md"
    planted = upload_folder(rig.settings.data_dir, "bob") / "planted.md"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("# Planted\n\nplanted on disk, never uploaded: PLANTED-991\n")
    from gradio.utils import get_upload_folder

    in_cache = Path(get_upload_folder()) / "not-from-the-route" / "notes.md"  # e.g. another app's
    in_cache.parent.mkdir(parents=True, exist_ok=True)
    in_cache.write_text("# Cached\n\nwritten into the cache by someone else: CACHED-552\n")
    path = {"own folder": str(planted), "alice's upload": str(alices), "system file": str(SYSTEM_FILE),
            "url": rig.provider.url + "/payroll.md", "cache dir": str(in_cache),
            "traversal": get_upload_folder() + "/.." * 12 + str(alices)}[target]
    if target == "system file" and not SYSTEM_FILE.is_file():
        pytest.skip(f"no {SYSTEM_FILE} on this machine")

    done = ingest_event(rig, "bob", [file_data(path)])

    assert refused(done), done
    assert own_paths(rig, "bob") == []
    if done["success"]:  # refused by our check: audited, with who and what
        audited = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lastmile.audit"]
        assert any(a["event"] == "upload_refused" and a["user"] == "bob" and a["path"] == path
                   for a in audited), audited
    body = ask(rig, "bob", "What is the payroll vault code? Quote the license and planted notes.")
    for secret in ("QX-7741-ALICE", SYSTEM_MARK, "PLANTED-991", "CACHED-552"):
        assert secret not in body
    assert alices.read_text() == ALICE_TEXT  # alice's stored source untouched


def test_the_same_file_twice_in_one_event_is_ingested_once(rig: Any) -> None:
    client = rig.sign_in("alice")
    path = upload(client, "payroll.md", ALICE_TEXT.encode())
    twice = [file_data(path, "payroll.md")] * 2
    assert call(client, event_index(client, "lm-upload", "upload"), [twice])["success"]
    assert len(own_paths(rig, "alice")) == 1


def test_bobs_same_named_upload_never_touches_alices_source(rig: Any) -> None:
    """A file of the same name from another user lands in that user's own folder."""
    assert legit_upload(rig, "alice", "payroll.md", ALICE_TEXT)["success"]
    assert legit_upload(rig, "bob", "payroll.md", BOB_TEXT)["success"]
    alices = upload_folder(rig.settings.data_dir, "alice") / "payroll.md"
    assert alices.read_text() == ALICE_TEXT
    assert (upload_folder(rig.settings.data_dir, "bob") / "payroll.md").read_text() == BOB_TEXT
    assert "QX-7741-ALICE" in ask(rig, "alice", "What is the payroll vault code?")
    bobs = ask(rig, "bob", "What is the payroll vault code?")
    assert "BOB-0000-DECOY" in bobs and "QX-7741-ALICE" not in bobs


def test_a_changed_file_of_the_same_name_updates_that_source(rig: Any) -> None:
    assert legit_upload(rig, "alice", "payroll.md", ALICE_TEXT)["success"]
    changed = ALICE_TEXT.replace("QX-7741-ALICE", "QX-8852-ALICE")
    assert legit_upload(rig, "alice", "payroll.md", changed)["success"]
    assert len(own_paths(rig, "alice")) == 1
    body = ask(rig, "alice", "What is the payroll vault code?")
    assert "QX-8852-ALICE" in body and "QX-7741-ALICE" not in body


@pytest.mark.parametrize("users", [["..", "a@b", "a_b", ".", "", "a/b", "a\\b"]])
def test_upload_folders_are_distinct_and_inside_uploads(tmp_path: Path, users: list[str]) -> None:
    data = tmp_path / "data"
    folders = [upload_folder(data, u) for u in users]
    assert len(set(folders)) == len(users)
    uploads = (data / "uploads").resolve()
    for user, folder in zip(users, folders, strict=True):
        kept = keep_upload(data, user, _file(tmp_path / "src" / user.replace("/", "%"), "n.md"))
        assert kept.resolve().parent == folder.resolve() and folder.resolve().parent == uploads
    assert sorted(p.name for p in data.iterdir()) == ["uploads"]  # nothing beside it


def _file(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("x")
    return folder / name


def test_received_upload_needs_the_route_record_and_no_symlink(tmp_path: Path) -> None:
    """The rule itself: inside the upload folder is not enough, nor is a link in it."""
    from gradio.context import LocalContext
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()) / f"sec-test-{os.getpid()}-{tmp_path.name}"
    real = _file(cache, "real.md")
    outside = _file(tmp_path, "secret.md")
    link = cache / "link.md"
    link.symlink_to(outside)
    route = type("Blocks", (), {"upload_file_set": {str(real), str(link)}})()
    assert received_upload(str(real)) is None  # outside a request: nothing is vouched for
    token = LocalContext.blocks.set(route)
    try:
        assert received_upload(str(real)) == real.resolve()
        assert received_upload(str(link)) is None  # recorded, but a symlink out
        assert received_upload(str(_file(cache, "unrecorded.md"))) is None
        assert received_upload(str(cache / ".." / cache.name / "real.md")) == real.resolve()
        assert received_upload("http://127.0.0.1:1/real.md") is None
    finally:
        LocalContext.blocks.reset(token)
        for p in cache.iterdir():
            p.unlink()
        cache.rmdir()


def test_no_event_copies_a_server_file_into_the_cache(rig: Any) -> None:
    """A forged ``FileData`` sent to any event (here the chat box) was copied into
    Gradio's cache, whatever its type, before any handler ran."""
    from gradio.utils import get_upload_folder

    secret = rig.settings.data_dir.parent / f"secret-{os.urandom(4).hex()}.cfg"
    secret.write_text(f"db_password = {os.urandom(8).hex()}\n")
    client = rig.sign_in("bob")
    done = call(client, event_index(client, "lm-input", "submit"),
                [file_data(str(secret)), None, None])  # the box, the session, the kept-back field
    assert not done["success"] and "not uploaded by a user" in done["output"]["error"]
    assert list(Path(get_upload_folder()).glob(f"*/{secret.name}")) == []
    assert secret.read_text().split(" = ")[1].strip() not in rig.provider_bodies()


def test_the_file_route_serves_no_kept_upload(rig: Any) -> None:
    """Gradio's ``/file=`` route is the other way to read a path: not the users' folders."""
    client = rig.sign_in("alice")
    path = upload(client, "payroll.md", ALICE_TEXT.encode())
    assert client.get(f"/gradio_api/file={path}").text == ALICE_TEXT  # the control: it serves uploads
    done = call(client, event_index(client, "lm-upload", "upload"), [[file_data(path, "payroll.md")]])
    assert done["success"]
    alices = upload_folder(rig.settings.data_dir, "alice") / "payroll.md"
    bob = rig.sign_in("bob")
    for target in (str(alices), path):  # the kept copy; the cache copy, gone once kept
        response = bob.get(f"/gradio_api/file={target}")
        assert response.status_code in (403, 404) and "QX-7741" not in response.text
