"""Hook specifications of fastdistill.

Every plugin (core's own built-ins included) implements one or more of these hooks in a module
that an entry point in the ``fastdistill`` group names.  Each hook receives a ``register``
callable; calling it adds one component to the :class:`~fastdistill.registry.Registry` that is
being built.  Hooks collect from every plugin (none is ``firstresult``): a name registered twice is
an error that names both distributions.

Example plugin module::

    from fastdistill import hookimpl, Step

    class Shout(Step):
        inputs = ("text",)
        outputs = ("text",)

        def process(self, rows, ctx):
            return [{**row, "text": row["text"].upper()} for row in rows]

    @hookimpl
    def register_steps(register):
        register(Shout, name="shout")

Lazy registration keeps discovery cheap (``fastdistill plugins``, ``Registry()``): instead of the
object, register the ``"package.module:QualName"`` string where it is defined, or a zero-argument
``loader=`` callable that returns it, together with its ``name``::

    @hookimpl
    def register_steps(register):
        register("my_plugin.steps:Shout", name="shout")
        register(name="whisper", loader=_whisper)

    def _whisper():
        from my_plugin.quiet import Whisper

        return Whisper

Nothing is imported until the component is used (``Registry.get(...).obj``, loading a pipeline
document that names it); a target that fails to import is then reported as a
:class:`~fastdistill.errors.PluginError` naming the component, the plugin and its distribution,
with the original exception chained.  Conflicts, ``prefer`` and listing work as for objects
(``fastdistill plugins --json`` shows the target string as the component's ``object``).  Such
strings belong in a plugin's own code only: documents name components, never import paths.
Keep the plugin module and its package ``__init__`` free of heavy imports too: discovery imports
the entry point's module.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "fastdistill"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_steps(register: Any) -> None:
    """Register step and task classes.

    :param register: call ``register(StepClass, name=None)`` once per class.  ``name`` defaults
        to the class attribute ``component_name`` or the snake_case class name.  The name is what
        pipeline documents use in ``component:``.  Lazily (preferred: discovery then builds no
        pydantic class): ``register("package.module:StepClass", name="...")`` or
        ``register(name="...", loader=callable)``; ``name`` is required then.
    :returns: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_models(register: Any) -> None:
    """Register LLM (and embedding) model classes, subclasses of :class:`fastdistill.LLM`.

    :param register: call ``register(ModelClass, name=None)`` once per class, or lazily
        ``register("package.module:ModelClass", name="...")`` / ``register(name=..., loader=f)``.
        Heavy libraries (HTTP clients, inference runtimes) must be imported inside the model's
        ``load()``, never at registration time, so discovery stays cheap.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_transports(register: Any) -> None:
    """Register :class:`fastdistill.transport.BatchTransport` implementations.

    :param register: call ``register(TransportClass, name=None)``, or lazily
        ``register("package.module:TransportClass", name="...")`` (see the module docs).
        Engines pick a transport by its registered name from the run configuration, never by
        type checks.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_placements(register: Any) -> None:
    """Register :class:`fastdistill.placement.PlacementStrategy` implementations.

    :param register: call ``register(StrategyClass, name=None)``, or lazily
        ``register("package.module:StrategyClass", name="...")`` (see the module docs).
        A strategy is instantiated per pipeline run and assigns devices to step replicas.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_engines(register: Any) -> None:
    """Register :class:`fastdistill.engine.ExecutionEngine` implementations.

    :param register: call ``register(EngineClass, name=None)``, or lazily
        ``register("package.module:EngineClass", name="...")`` (see the module docs).
        ``Pipeline.run(engine=NAME)`` and ``fastdistill run --engine NAME`` select one.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_migrations(register: Any) -> None:
    """Register pipeline-document migrations for the plugin's own components.

    :param register: call ``register(func, name=None, from_version=N)`` (lazily:
        ``register("package.module:func", name="...", from_version=N)``; the keyword arguments are
        kept as metadata without importing anything).  ``func`` takes a
        document (a ``dict``) of schema version ``N`` and returns the document upgraded to
        ``N + 1``.  Migrations run in version order when an older document is loaded.
    :returns: nothing.

    .. versionadded:: 0.1
    """
