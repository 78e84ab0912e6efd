"""Run manifests: what decides a resumable run's results, written once, checked on resume.

A rerun into the same folder must use the same input, model and settings, or its results
would silently mix with the earlier ones; the refusal names every setting that differs.
"""

import json
from pathlib import Path

from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_write_text

__all__ = ["check_manifest", "differences"]


def differences(old, new, prefix="") -> list:
    """Dotted names of the entries where two nested dicts differ."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [prefix or "value"]
    changed = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            changed.append(name)
        else:
            changed.extend(differences(old[key], new[key], name))
    return changed


def check_manifest(path, manifest: dict, what: str) -> None:
    """Write ``manifest`` to ``path`` (atomically), or check that it matches the one there.

    Raises:
        DataError: the folder holds a run with other settings (each one named), or an
            unreadable manifest.
    """
    path = Path(path)
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path} is not valid JSON ({err}); remove the folder or choose another --out"
            ) from err
        changed = differences(previous, json.loads(json.dumps(manifest)))
        if changed:
            details = "; ".join(
                f"{name}: {_lookup(previous, name)!r} there, {_lookup(manifest, name)!r} now"
                for name in changed[:6]
            )
            raise DataError(
                f"{path.parent} holds a {what} run with different settings ({details}); rerun "
                "with the same input and settings to resume, or choose another --out"
            )
        return
    atomic_write_text(path, json.dumps(manifest, indent=1))


def _lookup(nested, dotted):
    for key in dotted.split("."):
        if not isinstance(nested, dict) or key not in nested:
            return "(absent)"
        nested = nested[key]
    if isinstance(nested, str) and len(nested) > 16:
        return nested[:12] + "..."
    return nested
