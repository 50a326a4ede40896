"""Publishing a checked export as `BASE/<N>/`, the layout TF Serving polls.

The SavedModel is written and checked in a hidden temporary folder; only
a checked one is renamed (a local base: atomic) or uploaded (a remote
base: `gs://...`, `ram://` in tests) to the next free version number, with
its check figures in `kft_export_check.json`, so TF Serving never sees a
partial version and kft counts a version complete only with that file.
"""

import json
import os
import shutil
import tempfile
import time
import uuid

from kft.core import files
from kft.core.errors import UserError
from kft.serving import check as check_lib

CHECK_FILE = "kft_export_check.json"


def newest_checked(model_dir):
    """The newest export of a run that passed its check
    (`MODEL_DIR/export/<N>`), or None."""
    return newest_in(os.path.join(model_dir, "export"))


def newest_in(base):
    """The newest checked version under an export base (`BASE/<N>`), or
    None."""
    versions = [
        int(name)
        for name in files.listdir(base)
        if name.isdigit() and files.exists(os.path.join(base, name, CHECK_FILE))
    ]
    return os.path.join(base, str(max(versions))) if versions else None


def next_version(base):
    """1 + the largest integer folder name under `base` (1 when none)."""
    numbers = [int(name) for name in files.listdir(base) if name.isdigit()]
    return max(numbers, default=0) + 1


def build_and_publish(base, build):
    """Builds and checks an export in a temporary folder, then publishes
    it as `base/<N>/`; returns (path, figures).

    `build(folder)` writes and checks the SavedModel in `folder` and
    returns its figures. The folder is beside the versions under a local
    base (so the rename is atomic) and a local temporary one otherwise.
    """
    if files.exists(base) and not files.isdir(base):
        raise UserError(
            f"export base {base} is a file; give a folder (TF Serving's "
            "model base path), new or holding numbered versions"
        )
    local = files.is_local(base)
    try:
        if local:
            os.makedirs(base, exist_ok=True)
        temporary = tempfile.mkdtemp(
            prefix=".kft-export-", dir=base if local else None
        )
    except OSError as error:
        raise UserError(
            f"cannot write to {base}: {error.strerror}; give a folder you "
            "can write to"
        ) from None
    started = time.time()
    try:
        figures = build(temporary)
        figures.setdefault(
            "saved_model_bytes", check_lib.folder_bytes(temporary)
        )
        figures["export_seconds"] = round(time.time() - started, 1)
        path = (_publish if local else _upload)(temporary, base, figures)
    finally:
        # Gone already where _publish renamed it.
        shutil.rmtree(temporary, ignore_errors=True)
    return path, figures


def summary(figures):
    """The export figures metrics.json keeps."""
    keys = ("version", "max_abs_difference", "size_ratio", "export_seconds")
    return {key: figures[key] for key in keys if key in figures}


def size_ratio(figures, weights_file):
    """Adds the export's size against the run's weights file."""
    if weights_file and files.exists(weights_file):
        weights_bytes = files.size(weights_file)
        figures["weights_file_bytes"] = weights_bytes
        figures["size_ratio"] = round(
            figures["saved_model_bytes"] / weights_bytes, 4
        )


def _publish(temporary, base, figures):
    """Renames the checked folder to the next free version number."""
    for _ in range(100):
        version = next_version(base)
        path = os.path.join(base, str(version))
        figures["version"] = version
        with open(os.path.join(temporary, CHECK_FILE), "w") as file:
            json.dump(figures, file, indent=2)
        if os.path.exists(path):
            continue
        try:
            os.rename(temporary, path)
        except OSError:
            continue  # another writer took this number first
        return path
    raise UserError(f"could not find a free version number in {base}")


def _upload(temporary, base, figures):
    """Publishes the checked local folder under a remote `base` as `<N>/`.

    The upload goes to a hidden staging folder, which TF Serving and
    `next_version` ignore, so a failed or interrupted upload leaves no
    numbered folder. The copy into `<N>/` writes `saved_model.pb` after
    the variables and assets it needs, and the check file last. Unlike a
    local rename, choosing the number is not atomic: two exports to one
    remote base at the same moment could pick the same number.
    """
    staging = os.path.join(base, f".kft-export-{uuid.uuid4().hex}")
    path = None
    try:
        files.copy_tree(temporary, staging)
        figures["version"] = next_version(base)
        path = os.path.join(base, str(figures["version"]))
        # Until saved_model.pb is there, nothing loads the version.
        files.copy_tree(staging, path, last=["saved_model.pb"])
        files.write_text(
            os.path.join(path, CHECK_FILE), json.dumps(figures, indent=2)
        )
    except BaseException:
        if path is not None:
            files.remove(path)
        raise
    finally:
        files.remove(staging)
    return path
