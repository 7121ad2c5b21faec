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
        pipeline documents use in ``component:``.
    :returns: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_models(register: Any) -> None:
    """Register LLM (and embedding) model classes, subclasses of :class:`fastdistill.LLM`.

    :param register: call ``register(ModelClass, name=None)`` once per class.  Heavy libraries
        (HTTP clients, inference runtimes) must be imported inside the model's ``load()``, never at
        registration time, so discovery stays cheap.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_transports(register: Any) -> None:
    """Register :class:`fastdistill.transport.BatchTransport` implementations.

    :param register: call ``register(TransportClass, name=None)``.  Engines pick a transport by
        its registered name from the run configuration, never by type checks.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_placements(register: Any) -> None:
    """Register :class:`fastdistill.placement.PlacementStrategy` implementations.

    :param register: call ``register(StrategyClass, name=None)``.  A strategy is instantiated per
        pipeline run and assigns devices to step replicas.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_engines(register: Any) -> None:
    """Register :class:`fastdistill.engine.ExecutionEngine` implementations.

    :param register: call ``register(EngineClass, name=None)``.  ``Pipeline.run(engine=NAME)``
        and ``fastdistill run --engine NAME`` select one.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_migrations(register: Any) -> None:
    """Register pipeline-document migrations for the plugin's own components.

    :param register: call ``register(func, name=None, from_version=N)``.  ``func`` takes a
        document (a ``dict``) of schema version ``N`` and returns the document upgraded to
        ``N + 1``.  Migrations run in version order when an older document is loaded.
    :returns: nothing.

    .. versionadded:: 0.1
    """
