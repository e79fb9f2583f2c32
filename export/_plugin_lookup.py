"""Where TensorRT's ONNX parser sends a custom node: its local function or a plugin, and which.

The rules (``plugin_lookup`` in ``export/data/trt_onnx_ops.json``) were read from the
onnx-tensorrt sources each one cites; :func:`resolve` applies one to a node. Built-in op names
are not handled here (a node named like a built-in op goes to the built-in importer; the lint
checks that first).

    rule = LookupRule.from_table(load_op_table(), "10.3")
    resolve(rule, domain="pomexport", attribute=None, has_function=False,
            registered={"pomexport"})          # Lookup(target='unresolved', tried=('',))
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

PLUGIN, LOCAL_FUNCTION, UNRESOLVED = "plugin", "local_function", "unresolved"
_YIELDS = ("never", "if_registered", "if_attribute_or_override_and_registered")
_SOURCES = ("attribute", "domain")


@dataclass(frozen=True)
class LookupRule:
    """One parser version's rule: when a plugin replaces a local function, where it is found."""

    version: str
    function_yields_to_plugin: str  # one of _YIELDS
    namespaces: tuple[str, ...]  # "attribute" / "domain", in the order they are tried
    sources: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Mapping, version: str) -> LookupRule:
        """The rule named ``version`` in the table's ``plugin_lookup.rules``."""
        entry = table["plugin_lookup"]["rules"][version]
        rule = cls(
            version,
            entry["function_yields_to_plugin"],
            tuple(entry["namespaces"]),
            tuple(entry.get("sources", ())),
        )
        assert rule.function_yields_to_plugin in _YIELDS, rule
        assert rule.namespaces and set(rule.namespaces) <= set(_SOURCES), rule
        return rule


@dataclass(frozen=True)
class Lookup:
    """The parser's verdict: ``plugin`` (found in ``namespace``), ``local_function``, or
    ``unresolved`` (no creator under any of the namespaces ``tried``: "Plugin not found")."""

    target: str
    namespace: str | None = None
    tried: tuple[str, ...] = ()


def resolve(
    rule: LookupRule,
    *,
    domain: str,
    attribute: str | None,
    has_function: bool,
    registered: Collection[str],
    override: bool = False,
) -> Lookup:
    """Apply ``rule`` to a node of ``domain`` whose ``plugin_namespace`` attribute is
    ``attribute`` (None: absent), with or without a model-local function of its name, while
    creators of its (op_type, plugin_version) are registered in the namespaces ``registered``.
    ``override``: the parser flag kENABLE_PLUGIN_OVERRIDE (TensorRT 11)."""
    from_attribute = attribute if attribute is not None else ""  # the parser's default
    if has_function:
        if rule.function_yields_to_plugin == "never":
            yields = False
        elif rule.function_yields_to_plugin == "if_registered":
            yields = from_attribute in registered
        else:
            named = attribute is not None or override
            yields = named and from_attribute in registered
        # The plugin path taken here was just found under the attribute's namespace.
        return Lookup(PLUGIN, from_attribute) if yields else Lookup(LOCAL_FUNCTION)
    tried: list[str] = []
    for source in rule.namespaces:
        namespace = from_attribute if source == "attribute" else domain
        if namespace in tried:
            continue
        tried.append(namespace)
        if namespace in registered:
            return Lookup(PLUGIN, namespace, tuple(tried))
    return Lookup(UNRESOLVED, None, tuple(tried))


__all__ = ["LOCAL_FUNCTION", "PLUGIN", "UNRESOLVED", "Lookup", "LookupRule", "resolve"]
