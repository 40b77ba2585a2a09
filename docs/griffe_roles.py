"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

lrokit's docstrings name other objects with Sphinx roles (``:meth:`start```,
``:class:`~lrokit.Pipeline```), which mkdocstrings' Google-style parser would show as they
are written. Before the docstrings are parsed, this extension rewrites each role into a
cross-reference to the object's entry in the API reference when the reference shows that
object (a public name of ``lrokit`` or ``lrokit.testing``, or a public member of one), and
into inline code otherwise. ``mkdocs.yml`` loads it; the source files are not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:meth|attr|class|func|exc|data|obj|mod):`(?P<tilde>~?)(?P<target>[^`]+)`")
#: The packages whose public names the reference shows.
_NAMESPACES = ("lrokit", "lrokit.testing")


def _public(obj: Any) -> bool:
    return not any(part.startswith("_") for part in obj.name.split("."))


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in lrokit's docstrings into links or inline code."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite every docstring of the package once it is loaded."""
        if pkg.name != "lrokit":
            return
        self._pkg = pkg
        # The public path each exported object is shown under, by its defining path.
        self._shown: dict[str, str] = {}
        for namespace in _NAMESPACES:
            module = self._get(namespace)
            for name in (module.exports or ()) if module is not None else ():
                target = self._get(f"{namespace}.{name}")
                if target is not None:
                    self._shown.setdefault(_final(target).path, f"{namespace}.{name}")
        seen: set[str] = set()
        self._walk(pkg, seen)

    def _get(self, path: str) -> Any:
        try:
            return self._pkg.modules_collection[path]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None

    def _walk(self, obj: Any, seen: set[str]) -> None:
        if obj.is_alias or obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(
                lambda match: self._rewrite(match, obj), obj.docstring.value
            )
        for member in obj.members.values():
            self._walk(member, seen)

    def _rewrite(self, match: re.Match[str], context: Any) -> str:
        target = match.group("target").strip()
        shown = target.rsplit(".", 1)[-1] if match.group("tilde") else target
        identifier = self._resolve(target, context)
        return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"

    def _resolve(self, target: str, context: Any) -> str | None:
        """The reference's identifier for ``target`` named in ``context``'s docstring."""
        candidates = [target]
        owner = context if context.is_class else context.parent
        if owner is not None and owner.is_class:
            candidates.insert(0, f"{owner.path}.{target}")  # a member of the same class
        for namespace in _NAMESPACES:
            candidates.append(f"{namespace}.{target.removeprefix(namespace + '.')}")
        for candidate in candidates:
            identifier = self._shown_as(candidate)
            if identifier is not None:
                return identifier
        return None

    def _shown_as(self, path: str) -> str | None:
        """The identifier the reference shows the object at ``path`` under, if it does."""
        parts = path.split(".")
        for split in range(len(parts), 0, -1):
            head = self._get(".".join(parts[:split]))
            shown = None if head is None else self._shown.get(_final(head).path)
            if shown is None:
                continue  # perhaps a member of a shown class: try the shorter path
            obj = _final(head)
            for name in parts[split:]:
                if name.startswith("_") or name not in obj.all_members:
                    return None
                obj = _final(obj.all_members[name])
            # Objects without docstrings are left out of the reference: no entry to link to.
            return ".".join([shown, *parts[split:]]) if obj.has_docstrings else None
        return None


def _final(obj: Any) -> Any:
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return obj
