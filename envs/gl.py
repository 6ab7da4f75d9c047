"""Headless OpenGL backend selection for MuJoCo rendering, and clear errors when it fails.

dm_control picks its OpenGL backend from the ``MUJOCO_GL`` environment variable **once**, when
``dm_control`` is first imported. :func:`ensure_gl_backend` therefore has to run before that
import; the environments in this package call it right before their lazy dm_control import.

``MUJOCO_GL=egl`` renders headless through Mesa's llvmpipe (software) or a GPU's EGL driver
and needs no extra packages, so it is the default here. ``MUJOCO_GL=osmesa`` needs Debian's
``libosmesa6``; ``MUJOCO_GL=glfw`` needs a display.

:func:`dm_control_suite` is also where the package keeps a dependency's deprecation out of
the user's log: the suite's own ``cheetah.xml`` sets ``<compiler settotalmass=...>``, which
MuJoCo 3.x's compiler deprecates; dm_control logs MuJoCo's warning through absl ("WARNING:absl:
compiler attribute 'settotalmass' is deprecated ...") every time a cheetah model is compiled.
Nothing a user can change causes it, so that one message is dropped (:class:`_SuiteDeprecations`,
a filter on absl's logger, installed once); every other absl or MuJoCo warning still shows.
Gymnasium's MuJoCo models (``half_cheetah.xml``) set the same attribute, and without dm_control
MuJoCo's own handler prints the warning to stderr and appends it to ``MUJOCO_LOG.TXT`` in the
working directory; :func:`route_mujoco_warnings` sends MuJoCo's warnings to Python's logger
``"mujoco"`` instead, through the same filter (dm_control's import, when it comes later,
puts back its own route through absl).

Failures surface in different places and with different exception types (a ``RuntimeError``
from dm_control for an unknown backend name, an ``AttributeError`` from PyOpenGL when
``libOSMesa`` is missing, a ``mujoco.FatalError`` when no context can be made, ...).
:func:`dm_control_suite` and :func:`gl_context_errors` turn all of them into one
:class:`RenderBackendError` that names the backend in use and says how to fix it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = [
    "DEFAULT_GL_BACKEND",
    "RenderBackendError",
    "active_gl_backend",
    "dm_control_suite",
    "ensure_gl_backend",
    "gl_context_errors",
    "route_mujoco_warnings",
]

DEFAULT_GL_BACKEND = "egl"
"""The backend :func:`ensure_gl_backend` selects when ``MUJOCO_GL`` is unset."""

_FIX_HINT = (
    "Set MUJOCO_GL before Python starts (or before dm_control is first imported): "
    "MUJOCO_GL=egl (headless, Mesa llvmpipe or a GPU driver, no extra packages) or "
    "MUJOCO_GL=osmesa (apt install libosmesa6); MUJOCO_GL=glfw needs a display. "
    "With MUJOCO_GL=egl, PYOPENGL_PLATFORM must be unset or 'egl'."
)


class RenderBackendError(RuntimeError):
    """No OpenGL context could be created (or the backend could not be loaded) for rendering.

    The message names the ``MUJOCO_GL`` value in use and how to fix it.
    """


def ensure_gl_backend() -> str:
    """Select the headless default ``MUJOCO_GL=egl`` if the user has not chosen a backend.

    Must run before ``dm_control`` is imported to have an effect (dm_control reads the
    variable at import time). A value the user has set is left alone.

    Returns:
        The ``MUJOCO_GL`` value now in effect.
    """
    return os.environ.setdefault("MUJOCO_GL", DEFAULT_GL_BACKEND)


def active_gl_backend() -> str:
    """Describe the backend in use, e.g. ``"MUJOCO_GL='egl'"``, for messages.

    If dm_control is already imported and picked a backend other than what ``MUJOCO_GL`` says
    now (the variable was changed after the import), both are named.
    """
    value = os.environ.get("MUJOCO_GL")
    text = f"MUJOCO_GL={value!r}" if value is not None else "MUJOCO_GL unset"
    render_module = sys.modules.get("dm_control._render")
    chosen = getattr(render_module, "BACKEND", None) if render_module is not None else None
    if chosen is not None and chosen != value:
        text += f" (dm_control was imported earlier and uses backend {chosen!r})"
    return text


def _backend_error(what: str, cause: BaseException) -> RenderBackendError:
    return RenderBackendError(
        f"{what} with {active_gl_backend()}: {type(cause).__name__}: {cause}\n{_FIX_HINT}"
    )


def dm_control_suite() -> ModuleType:
    """Import and return ``dm_control.suite``, selecting the GL backend first.

    Raises:
        ModuleNotFoundError: dm_control (or mujoco) is not installed; the message says what
            to install.
        RenderBackendError: the OpenGL backend named by ``MUJOCO_GL`` could not be loaded.
    """
    ensure_gl_backend()
    try:
        from dm_control import suite
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] in ("dm_control", "mujoco"):
            raise ModuleNotFoundError(
                f"{error}. The DeepMind Control Suite environments need "
                "`pip install 'dm-control>=1.0.20' 'mujoco>=3.1,<4'`.",
                name=error.name,
            ) from error
        raise _backend_error("Could not load the OpenGL backend", error) from error
    except Exception as error:  # unknown MUJOCO_GL value, missing libOSMesa, ...
        raise _backend_error("Could not load the OpenGL backend", error) from error
    _quiet_suite_deprecations()
    return suite


class _SuiteDeprecations(logging.Filter):
    """Drops the deprecation warnings MuJoCo's compiler gives for the suite's own model files
    (module doc): those whose message starts with one of :attr:`PREFIXES`."""

    PREFIXES = ("compiler attribute 'settotalmass' is deprecated",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.PREFIXES)


def _log_mujoco_warning(message: str | bytes) -> None:
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    logging.getLogger("mujoco").warning(text)


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's logger ``"mujoco"``, which drops the model files'
    deprecations (:class:`_SuiteDeprecations`), instead of stderr and ``MUJOCO_LOG.TXT``
    (module doc). Installed once per process; a callback someone else set is left alone.
    Selects the OpenGL backend first (:func:`ensure_gl_backend`): ``import mujoco`` reads
    ``MUJOCO_GL``."""
    ensure_gl_backend()
    import mujoco

    logger = logging.getLogger("mujoco")
    if not any(isinstance(f, _SuiteDeprecations) for f in logger.filters):
        logger.addFilter(_SuiteDeprecations())
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_log_mujoco_warning)


def _quiet_suite_deprecations() -> None:
    """Put a :class:`_SuiteDeprecations` on absl's logger (dm_control's), once per process."""
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _SuiteDeprecations) for f in logger.filters):
        logger.addFilter(_SuiteDeprecations())


@contextlib.contextmanager
def gl_context_errors() -> Iterator[None]:
    """Turn any failure inside the block into a :class:`RenderBackendError`.

    Wrap only the code that creates the GL context (the first render), so that unrelated
    errors, e.g. a bad camera id, are not mislabelled as GL problems.
    """
    try:
        yield
    except RenderBackendError:
        raise
    except Exception as error:
        raise _backend_error("Could not create an OpenGL context for rendering", error) from error
