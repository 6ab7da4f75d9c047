"""GL backend selection and the error a broken backend gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keypoint_wm.envs.gl import RenderBackendError, ensure_gl_backend, gl_context_errors

_BUILD = (
    "from keypoint_wm.envs import DMCPixelEnv, RenderBackendError\n"
    "try:\n"
    "    DMCPixelEnv('cartpole', 'balance', size=8)\n"
    "except RenderBackendError as error:\n"
    "    print('RenderBackendError:', error)\n"
    "else:\n"
    "    print('no error')\n"
)


def _python(code: str, backend: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``code`` in a new Python (``backend``: its MUJOCO_GL, default the tests' own), which
    must exit 0."""
    env = {**os.environ, "MUJOCO_GL": backend or os.environ.get("MUJOCO_GL", "egl")}
    if backend is not None:
        env.pop("PYOPENGL_PLATFORM", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=cwd, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def _build_with(backend: str) -> str:
    return _python(_BUILD, backend).stdout


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["bogus-backend", "disabled"])
def test_broken_backend_names_itself_and_the_fix(backend):
    # "bogus-backend" fails when dm_control is imported, "disabled" when the context is made.
    output = _build_with(backend)
    assert output.startswith("RenderBackendError:"), output
    assert f"MUJOCO_GL={backend!r}" in output
    assert "MUJOCO_GL=egl" in output
    assert "libosmesa6" in output


def test_ensure_gl_backend_keeps_a_chosen_backend(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert ensure_gl_backend() == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    assert ensure_gl_backend() == "egl"
    assert os.environ["MUJOCO_GL"] == "egl"


def test_gl_context_errors_wraps_failures(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    with pytest.raises(RenderBackendError, match="MUJOCO_GL='egl'") as caught:
        with gl_context_errors():
            raise OSError("no display")
    assert isinstance(caught.value.__cause__, OSError)
    assert isinstance(caught.value, RuntimeError)


_CHEETAH = (
    "import gymnasium\n"
    "import keypoint_wm.envs\n"
    "from absl import logging\n"
    "from keypoint_wm.envs import make_env\n"
    "for env in (make_env('cheetah-run', size=8), gymnasium.make('KeypointWM/cheetah-run-v0', size=8)):\n"
    "    env.reset(seed=0)\n"
    "    env.close()\n"
    "logging.warning('another absl warning')\n"
)


@pytest.mark.integration
def test_making_a_suite_env_prints_no_settotalmass_deprecation():
    """The suite's cheetah.xml uses <compiler settotalmass>, deprecated by MuJoCo's compiler;
    the package drops that one absl warning (envs/gl.py) and no other."""
    result = _python(_CHEETAH)
    assert "settotalmass" not in result.stderr
    assert "another absl warning" in result.stderr


_GYM_CHEETAH = (
    "import logging\n"
    "from keypoint_wm.envs.gym_pixels import make_render_env\n"
    "env = make_render_env('HalfCheetah-v5')\n"
    "env.close()\n"
    "logging.getLogger('mujoco').warning('another mujoco warning')\n"
)


@pytest.mark.integration
def test_making_a_gymnasium_mujoco_env_prints_no_settotalmass_deprecation(tmp_path):
    """Gymnasium's half_cheetah.xml sets the same deprecated attribute; without dm_control
    MuJoCo would print it and append it to MUJOCO_LOG.TXT in the working directory."""
    result = _python(_GYM_CHEETAH, cwd=tmp_path)
    assert "settotalmass" not in result.stderr + result.stdout
    assert "another mujoco warning" in result.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
